//! Chat completions: routing, fallback, health.

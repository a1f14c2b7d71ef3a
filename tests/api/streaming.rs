//! Streaming chat completions.

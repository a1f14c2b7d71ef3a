//! `Usage`: what one call consumed, in OpenAI's terms, whatever dialect reported it.
//!
//! `prompt_tokens` includes cached tokens (OpenAI's convention); the cache counts say how many of
//! them were read from or written to the provider's prompt cache, which is priced apart.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the cache (`prompt_tokens_details.cached_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the cache (`prompt_tokens_details.cache_write_tokens`).
    pub cache_write_tokens: u64,
}

/// The OpenAI `usage` object as upstreams send it.
#[derive(Deserialize)]
struct Wire {
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Usage, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let details = wire.prompt_tokens_details.unwrap_or_default();
        Ok(Usage {
            prompt_tokens: wire.prompt_tokens.unwrap_or(0),
            completion_tokens: wire.completion_tokens.unwrap_or(0),
            cache_read_tokens: details.cached_tokens.unwrap_or(0),
            cache_write_tokens: details.cache_write_tokens.unwrap_or(0),
        })
    }
}

impl Usage {
    /// From a `usage` value; `None` unless it holds `prompt_tokens`.
    pub fn from_json(usage: &serde_json::Value) -> Option<Usage> {
        usage.get("prompt_tokens")?.as_u64()?;
        Usage::deserialize(usage).ok()
    }

    /// The OpenAI `usage` object for these counts.
    pub fn to_json(&self) -> serde_json::Value {
        let mut usage = serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        });
        if self.cache_read_tokens > 0 || self.cache_write_tokens > 0 {
            usage["prompt_tokens_details"] = serde_json::json!({
                "cached_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            });
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;
    use serde_json::json;

    #[test]
    fn cache_counts_are_read_from_the_details_and_written_back() {
        let wire = json!({"prompt_tokens": 100, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}});
        let usage = Usage::from_json(&wire).expect("usage");
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens
            ),
            (100, 60, 30)
        );
        assert_eq!(Usage::from_json(&usage.to_json()), Some(usage));
        assert_eq!(Usage::from_json(&json!({"completion_tokens": 1})), None);
    }
}

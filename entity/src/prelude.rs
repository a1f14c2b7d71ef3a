pub use super::agent_token::Entity as AgentToken;
pub use super::alias_override::Entity as AliasOverride;
pub use super::brand::Entity as Brand;
pub use super::integration::Entity as Integration;
pub use super::invite::Entity as Invite;
pub use super::outbox::Entity as Outbox;
pub use super::token_usage_hourly::Entity as TokenUsageHourly;
pub use super::trace::Entity as Trace;

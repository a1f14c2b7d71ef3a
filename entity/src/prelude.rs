pub use super::agent_token::Entity as AgentToken;
pub use super::alias_override::Entity as AliasOverride;
pub use super::brand::Entity as Brand;
pub use super::integration::Entity as Integration;

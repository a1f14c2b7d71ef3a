//! Scopes: what a token may do. A small bit set, so checking one is a mask test.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    GateChat,
    GateModels,
    GateUsage,
    System,
    Job,
    Content,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::GateChat,
        Scope::GateModels,
        Scope::GateUsage,
        Scope::System,
        Scope::Job,
        Scope::Content,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::GateChat => "gate:chat",
            Scope::GateModels => "gate:models",
            Scope::GateUsage => "gate:usage",
            Scope::System => "system",
            Scope::Job => "job",
            Scope::Content => "content",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// What a client credential carries: everything.
    pub fn all() -> Self {
        Self::ALL_BITS
    }

    const ALL_BITS: Scopes = Scopes(0b11_1111);

    /// What a new agent token gets when the request names none.
    pub fn default_for_tokens() -> Self {
        [Scope::GateChat, Scope::GateModels, Scope::GateUsage]
            .into_iter()
            .collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses names, returning the first unknown one as the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        names
            .into_iter()
            .map(|n| Scope::parse(n).ok_or(n))
            .collect()
    }

    /// Space-separated names, as stored.
    pub fn to_storage(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_names_the_unknown_scope() {
        let scopes = Scopes::parse(["gate:chat", "system"]).expect("known scopes");
        assert!(scopes.contains(Scope::System) && !scopes.contains(Scope::GateUsage));
        assert_eq!(Scopes::parse(scopes.to_storage().split(' ')), Ok(scopes));
        assert_eq!(Scopes::parse(["gate:chat", "admin"]), Err("admin"));
        assert_eq!(Scopes::all().iter().count(), Scope::ALL.len());
    }
}

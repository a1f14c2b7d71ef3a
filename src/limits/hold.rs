//! What a request may cost, and how much of it a hard budget can pay for.
//!
//! The hold is an upper bound, never an average: the prompt is counted at its bound (see
//! `gate::request`), the completion at the limit the provider will be sent. With a hard budget
//! that limit is lowered to what the remaining room pays for, so the hold always fits the cap.

use crate::money::Money;

/// Serving a request on one model of its plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidatePrice {
    /// The prompt's upper bound at this model's input price.
    pub prompt: Money,
    /// Nano-dollars per completion token.
    pub nanos_per_output_token: f64,
    /// The completion limit before the budget has its say: the client's, at most the model's.
    pub max_output: u64,
}

impl CandidatePrice {
    /// The prompt plus `output` completion tokens, rounded up.
    pub fn cost(&self, output: u64) -> Money {
        let completion = (output as f64 * self.nanos_per_output_token).ceil() as i64;
        Money::from_nanos(self.prompt.nanos().saturating_add(completion))
    }

    /// The most completion tokens `room` pays for after the prompt, at most `max_output`.
    fn affordable(&self, room: i64) -> u64 {
        let left = room - self.prompt.nanos();
        if left < 0 {
            return 0;
        }
        if self.nanos_per_output_token <= 0.0 {
            return self.max_output;
        }
        let tokens = (left as f64 / self.nanos_per_output_token).floor();
        (tokens as u64).min(self.max_output)
    }
}

/// The most a request may cost.
#[derive(Debug, Clone, PartialEq)]
pub enum Estimate {
    /// A known worst case (embeddings, images, audio).
    Fixed(Money),
    /// A chat: one price per candidate of the plan, in the plan's order.
    Chat(Vec<CandidatePrice>),
}

/// What the budget granted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grant {
    /// Held until the request settles.
    pub hold: Money,
    /// For a chat under a hard budget: the completion limit each candidate is sent, in the plan's
    /// order; 0 means the budget cannot pay for even one token there (skip that candidate).
    /// Empty otherwise (the client's own limit goes upstream unchanged).
    pub completion_limits: Vec<u64>,
}

impl Estimate {
    /// The grant for `room` nano-dollars left under a hard cap (`None`: no hard cap). `None`
    /// when the room cannot pay for the request's minimum.
    pub fn grant(&self, room: Option<i64>) -> Option<Grant> {
        match (self, room) {
            (Estimate::Fixed(cost), Some(room)) if cost.nanos() > room => None,
            (Estimate::Fixed(cost), _) => Some(Grant {
                hold: *cost,
                completion_limits: Vec::new(),
            }),
            (Estimate::Chat(_), None) => Some(Grant {
                hold: self.worst_case(),
                completion_limits: Vec::new(),
            }),
            (Estimate::Chat(prices), Some(room)) => {
                let limits: Vec<u64> = prices.iter().map(|p| p.affordable(room)).collect();
                let hold = max_cost(
                    prices
                        .iter()
                        .zip(&limits)
                        .filter(|(_, limit)| **limit > 0)
                        .map(|(p, limit)| p.cost(*limit)),
                );
                limits.iter().any(|l| *l > 0).then_some(Grant {
                    hold,
                    completion_limits: limits,
                })
            }
        }
    }

    /// The most the request can cost (its full completion limit on its dearest candidate).
    pub fn worst_case(&self) -> Money {
        match self {
            Estimate::Fixed(cost) => *cost,
            Estimate::Chat(prices) => max_cost(prices.iter().map(|p| p.cost(p.max_output))),
        }
    }

    /// The least the request can cost (one completion token on its cheapest candidate).
    pub fn minimum(&self) -> Money {
        match self {
            Estimate::Fixed(cost) => *cost,
            Estimate::Chat(prices) => prices
                .iter()
                .map(|p| p.cost(1))
                .min()
                .unwrap_or(Money::ZERO),
        }
    }
}

fn max_cost(costs: impl Iterator<Item = Money>) -> Money {
    costs.max().unwrap_or(Money::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// $1 per million prompt tokens and $2 per million completion tokens.
    fn price(prompt_tokens: i64, max_output: u64) -> CandidatePrice {
        CandidatePrice {
            prompt: Money::from_nanos(prompt_tokens * 1_000),
            nanos_per_output_token: 2_000.0,
            max_output,
        }
    }

    #[test]
    fn a_hard_cap_lowers_the_completion_limit_to_what_the_room_pays_for() {
        let chat = Estimate::Chat(vec![price(100, 1_000)]);
        // Room: 100 prompt tokens (100,000 nanos) plus 50 completion tokens (100,000 nanos).
        let grant = chat.grant(Some(200_000)).expect("affordable");
        assert_eq!(grant.completion_limits, vec![50]);
        assert_eq!(grant.hold, Money::from_nanos(200_000));
        let roomy = chat.grant(Some(i64::MAX / 2)).expect("affordable");
        assert_eq!(
            roomy.completion_limits,
            vec![1_000],
            "never above the client's"
        );
    }

    #[test]
    fn a_request_whose_minimum_cannot_be_paid_for_is_refused() {
        let chat = Estimate::Chat(vec![price(100, 10)]);
        assert_eq!(
            chat.grant(Some(101_999)),
            None,
            "prompt + 1 token is 102,000"
        );
        assert!(chat.grant(Some(102_000)).is_some());
        assert_eq!(chat.minimum(), Money::from_nanos(102_000));
    }

    #[test]
    fn a_candidate_the_room_cannot_pay_for_is_skipped_and_the_hold_is_the_dearest_left() {
        let dear = CandidatePrice {
            nanos_per_output_token: 1_000_000.0,
            ..price(1_000, 10)
        };
        let chat = Estimate::Chat(vec![dear, price(100, 10)]);
        let grant = chat.grant(Some(500_000)).expect("the cheap one fits");
        assert_eq!(grant.completion_limits, vec![0, 10]);
        assert_eq!(grant.hold, Money::from_nanos(120_000));
    }

    #[test]
    fn without_a_hard_cap_the_hold_is_the_worst_case_and_nothing_is_capped() {
        let chat = Estimate::Chat(vec![price(100, 10), price(200, 10)]);
        let grant = chat.grant(None).expect("always");
        assert!(grant.completion_limits.is_empty());
        assert_eq!(grant.hold, Money::from_nanos(220_000));
    }
}

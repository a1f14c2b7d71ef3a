//! Fetching pages safely: every URL, redirect hop and DNS answer passes the guard.

pub mod client;
pub mod guard;

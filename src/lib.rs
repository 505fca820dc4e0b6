//! Portcullis: a reverse-proxy security gateway on Pingora.
//!
//! A request passes the stages of the compiled config in order — normalise (request id, client
//! address, route), then the access checks — and is either answered by the gateway with a
//! [`problem::Refusal`] or proxied to a healthy backend of its route's upstream group. The
//! config is compiled once per (re)load ([`config`]) and swapped atomically ([`reload`]).

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod config;
pub mod corpus;
pub mod demo;
pub mod fuzz;
pub mod ipset;
pub mod maintenance;
pub mod method;
pub mod metrics;
pub mod problem;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod route;
pub mod server;
pub mod stage;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod waf;

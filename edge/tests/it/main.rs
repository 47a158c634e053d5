//! Crate API tests of `orrery-edge` (HTTP routes and WebSocket sessions
//! against a real server on loopback), compiled as one binary.

#[path = "../../../tests/support/handmade.rs"]
mod handmade;
#[path = "../../../tests/support/modules.rs"]
mod modules;

mod accounts;
mod api;
mod database_api;
mod http_handlers;
mod metrics;
mod migrations;
mod names;
mod publish_flows;
mod signing;
mod sql_bounds;
mod ws;
mod ws_query_views;
mod ws_rls;
mod ws_views;
mod wsclient;

//! Black-box tests of shiplog: each test starts the real server (in-process or
//! the built binary) on a random port against a freshly created PostgreSQL
//! database, speaks HTTP to it, and drops the database afterwards.

mod access;
mod audit;
mod auth;
mod auto_update;
mod bad_input;
mod binary;
mod cli;
mod cluster;
mod cluster_faults;
mod console;
mod console_browser;
mod container_image;
mod db_restart;
mod deployments;
mod digests;
mod docs;
mod fuzz;
mod helpers;
mod leader;
mod ledger;
mod metrics;
mod oidc;
mod openapi_contract;
mod operations;
mod outage;
mod ownership;
mod platform;
mod platform_seed;
mod private_database;
mod problem_types;
mod projections;
mod rbac_coverage;
mod reasons;
mod replicas;
mod secrets;
mod seed_walkthrough;
mod sse;
mod streams;
mod sweep;
mod usecases;

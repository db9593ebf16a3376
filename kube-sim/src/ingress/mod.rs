//! The simulator's ingress controller: its listener ([`listener`]) and the host index it
//! routes by ([`routes`]), kept up to date by the store as Ingresses change. Ingresses are
//! validated by the store (`store::validate`) and rendered for kubectl by `http::table`.

pub(crate) mod listener;
pub(crate) mod routes;

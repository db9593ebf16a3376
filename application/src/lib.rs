//! shiplog's use cases: what a client can ask for, expressed over ports that
//! the infrastructure implements (event store, read models, token storage).

pub mod auth;
pub mod cursor;
pub mod error;
pub mod ports;
pub mod usecases;

pub use auth::{Authenticator, NewToken, Principal, Scope, TokenInfo};
pub use cursor::Cursor;
pub use error::AppError;
pub use ports::{
    CommandBus, CommandContext, DeploymentView, Page, ReadModel, TokenStore, UsecaseFilter,
    UsecaseView,
};
pub use usecases::Usecases;

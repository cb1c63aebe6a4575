//! The GraphQL schema: queries for analysts and auditors, mutations for the
//! telephony side and case work. GraphQL types live here only; they convert
//! from domain types and never leak back into `domain`.

pub mod audit;
pub mod call;
pub mod chat;
pub mod documents;
pub mod read;
pub mod staff;

use async_graphql::{EmptySubscription, ErrorExtensions, MergedObject, Schema};
use callvault_domain::StaffId;

use callvault_projections::Projections;

use crate::{error::AppError, service::Registry};

pub use call::{CallMutation, CallQuery, CaseMutation, HoldMutation};
pub use read::{OperatorMutation, ReadQuery};
pub use staff::StaffMutation;

#[derive(MergedObject, Default)]
pub struct Query(CallQuery, ReadQuery, audit::AuditQuery, chat::ChatQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    CallMutation,
    HoldMutation,
    CaseMutation,
    chat::ChatMutation,
    StaffMutation,
    OperatorMutation,
);

pub type CallvaultSchema = Schema<Query, Mutation, EmptySubscription>;

/// Who is asking, as established by the HTTP layer.
#[derive(Debug, Clone)]
pub struct Actor(pub StaffId);

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted (fields, weighted).
pub const MAX_COMPLEXITY: usize = 500;
/// The complexity of a field that reads the whole log: more than half the
/// limit, so aliases cannot make one query read it twice.
pub(crate) const EXPENSIVE: usize = MAX_COMPLEXITY / 2 + 1;

pub fn schema(registry: Registry, projections: Projections) -> CallvaultSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(registry)
        .data(projections)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The GraphQL form of an edge error: its message, with `extensions.code`
/// (and `extensions.field` for invalid input). async-graphql turns any
/// `Display` error into a code-less error, so every resolver maps its
/// `AppError` through here explicitly.
pub fn gql_error(e: AppError) -> async_graphql::Error {
    e.log();
    {
        let code = e.code();
        let field = match &e {
            AppError::InvalidInput { field, .. } => field.clone(),
            _ => None,
        };
        async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = &field {
                ext.set("field", field.as_str());
            }
        })
    }
}

/// The GraphQL context's registry and actor.
fn parts<'a>(ctx: &async_graphql::Context<'a>) -> Result<(&'a Registry, &'a StaffId), AppError> {
    let registry = ctx
        .data::<Registry>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without a registry")))?;
    let actor = ctx
        .data::<Actor>()
        .map(|a| &a.0)
        .map_err(|_| AppError::Unauthenticated("no actor for this request".into()))?;
    Ok((registry, actor))
}

/// The registry and the actor with their roles.
pub(crate) async fn caller<'a>(
    ctx: &async_graphql::Context<'a>,
) -> Result<(&'a Registry, crate::access::Caller), AppError> {
    let (registry, actor) = parts(ctx)?;
    Ok((
        registry,
        crate::access::Caller::load(registry, actor).await?,
    ))
}

/// Lets the actor through for an action on no particular call, or logs the
/// refusal and returns it.
pub(crate) async fn guard<'a>(
    ctx: &async_graphql::Context<'a>,
    action: callvault_domain::policy::Action,
) -> Result<(&'a Registry, crate::access::Caller), AppError> {
    let (registry, caller) = caller(ctx).await?;
    crate::access::authorize_plain(registry, &caller, action).await?;
    Ok((registry, caller))
}

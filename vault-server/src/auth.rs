//! Who may do what: tokens, principals, and the one place where a request's scope is checked.
//!
//! A token is `tvt_` and 64 hex digits of randomness, shown once when made; the control
//! database keeps only its BLAKE3 hash. Every route declares an [`Access`]; [`authorize`] runs
//! before its handler, looks the token up, and lets the request through only when
//! [`Principal::may`] says so for the route's access and the tenant in its path. Handlers that
//! list several tenants' things filter them with [`Principal::sees`].

use crate::App;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the vault: every tenant, every route.
    Operator,
    /// Support staff: records and restores of every tenant, or of the listed tenants only.
    Support,
    /// One tenant, serving itself.
    Tenant,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "support" => Some(Role::Support),
            "tenant" => Some(Role::Tenant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Support => "support",
            Role::Tenant => "tenant",
        }
    }
}

/// The caller of a request, from its token.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    /// The token's id (not its secret).
    pub token: String,
    pub role: Role,
    /// Support: the tenants it is limited to (empty: all). Tenant: exactly its own.
    pub tenants: Vec<String>,
    pub label: String,
}

/// What a route requires (docs/SERVER.md, "Who can do what").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No token (health, metrics, the OpenAPI document, signed download links).
    Public,
    /// Any valid token; the handler shows only what the caller sees.
    Any,
    /// Operators only.
    Operator,
    /// The tenant of the path: an operator, support staff whose scope has it, or the tenant.
    Tenant,
    /// The tenant of the path, by support staff whose scope has it or an operator.
    Staff,
    /// The tenant of the path, by the tenant itself or an operator.
    Owner,
    /// The tenant of the path, by the tenant itself only (it proves it with its own key).
    TenantOnly,
}

/// Why a request was refused.
pub enum Denied {
    /// No token, or one that is unknown or revoked: 401.
    Unauthenticated,
    /// The caller does not see the tenant: 404, as for a tenant that does not exist, so that
    /// tokens cannot probe which tenants exist.
    Unseen,
    /// The caller sees the tenant but its role may not do this: 403.
    Forbidden,
}

impl Principal {
    /// Whether this caller may see anything of `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        match self.role {
            Role::Operator => true,
            Role::Support => self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant),
            Role::Tenant => self.tenants.len() == 1 && self.tenants[0] == tenant,
        }
    }

    /// The tenants this caller is limited to (`None`: every tenant).
    pub fn scope(&self) -> Option<&[String]> {
        match self.role {
            Role::Operator => None,
            Role::Support if self.tenants.is_empty() => None,
            _ => Some(&self.tenants),
        }
    }

    /// The one check: may this caller use a route of `access` on `tenant` (the path's)?
    pub fn may(&self, access: Access, tenant: Option<&str>) -> Result<(), Denied> {
        let role_ok = match access {
            Access::Public | Access::Any | Access::Tenant => true,
            Access::Operator => self.role == Role::Operator,
            Access::Staff => self.role != Role::Tenant,
            Access::Owner => self.role != Role::Support,
            Access::TenantOnly => self.role == Role::Tenant,
        };
        match tenant {
            Some(t) if !self.sees(t) => Err(Denied::Unseen),
            _ if !role_ok => Err(Denied::Forbidden),
            _ => Ok(()),
        }
    }

    /// The name the audit trail gives this caller.
    pub fn actor(&self) -> String {
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" {}", self.label)
        };
        format!("{}:{}{label}", self.role.as_str(), self.token)
    }
}

/// A new token and its hash.
pub fn new_token() -> (String, [u8; 32]) {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let token = format!("tvt_{}", hex::encode(secret));
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Why a request got no principal: refused, or the control database did not answer.
pub enum Refusal {
    Denied(Denied),
    Unavailable(String),
}

/// The one check of every request, API or console: the token's principal, if it may use a
/// route of `access` on `tenant` (the path's).
pub async fn check(
    app: &App,
    token: Option<&str>,
    access: Access,
    tenant: Option<&str>,
) -> Result<Principal, Refusal> {
    let principal = match token {
        Some(t) => app
            .control
            .principal(&hash(t))
            .await
            .map_err(|e| Refusal::Unavailable(format!("{e:#}")))?,
        None => None,
    };
    let principal = principal.ok_or(Refusal::Denied(Denied::Unauthenticated))?;
    principal.may(access, tenant).map_err(Refusal::Denied)?;
    Ok(principal)
}

/// The path's `{tenant}`, if it has one.
pub fn path_tenant(params: &RawPathParams) -> Option<String> {
    params
        .iter()
        .find(|(name, _)| *name == "tenant")
        .map(|(_, v)| v.to_string())
}

/// The access the request's route declared (see `routes::router`); none declared is the
/// strictest, operators only.
pub fn route_access(req: &Request) -> Access {
    req.extensions()
        .get::<Access>()
        .copied()
        .unwrap_or(Access::Operator)
}

/// Middleware of every API route: the route's [`Access`] is in the request's extensions (see
/// `routes::router`); the bearer token's principal goes into them for the handler.
pub async fn authorize(
    State(app): State<App>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let access = route_access(&req);
    if access == Access::Public {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let tenant = path_tenant(&params);
    match check(&app, token.as_deref(), access, tenant.as_deref()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(Refusal::Denied(d)) => crate::routes::refuse(d),
        Err(Refusal::Unavailable(e)) => {
            tracing::warn!("checking a token: {e}");
            crate::routes::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the control database does not answer",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenants: &[&str]) -> Principal {
        Principal {
            token: "tok".into(),
            role,
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
            label: String::new(),
        }
    }

    #[test]
    fn scope_is_checked_before_role() {
        let tenant = p(Role::Tenant, &["acme"]);
        assert!(tenant.may(Access::Owner, Some("acme")).is_ok());
        assert!(matches!(
            tenant.may(Access::Owner, Some("globex")),
            Err(Denied::Unseen)
        ));
        assert!(matches!(
            tenant.may(Access::Staff, Some("acme")),
            Err(Denied::Forbidden)
        ));
        assert!(matches!(
            tenant.may(Access::Operator, None),
            Err(Denied::Forbidden)
        ));
        let support = p(Role::Support, &["acme"]);
        assert!(support.may(Access::Staff, Some("acme")).is_ok());
        assert!(matches!(
            support.may(Access::Staff, Some("globex")),
            Err(Denied::Unseen)
        ));
        assert!(matches!(
            support.may(Access::Owner, Some("acme")),
            Err(Denied::Forbidden)
        ));
        let everyone = p(Role::Support, &[]);
        assert!(everyone.may(Access::Tenant, Some("globex")).is_ok());
        let operator = p(Role::Operator, &[]);
        assert!(operator.may(Access::Owner, Some("x")).is_ok());
        assert!(matches!(
            operator.may(Access::TenantOnly, Some("x")),
            Err(Denied::Forbidden)
        ));
    }

    #[test]
    fn a_tenant_token_with_no_tenant_sees_nothing() {
        let broken = p(Role::Tenant, &[]);
        assert!(!broken.sees("acme"));
        assert!(!broken.sees(""));
    }
}

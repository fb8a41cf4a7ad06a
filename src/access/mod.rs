//! Who may do what: principals from bearer tokens, the one policy function, scopes, and
//! OIDC/SMART tokens.
//!
//! - [`policy`]: principals, actions, the one `decide`, scopes, token issue, audit appends.
//! - [`jwt`]: OIDC/SMART bearer tokens verified against a JWKS; SMART scopes.
//! - [`audit`]: the audit event of an access, and `authorize`, which audits denials.
//! - [`lookup`]: a document by id for a principal: scope check, audited 404.

pub mod audit;
pub mod jwt;
pub mod lookup;
pub mod policy;

//! Step 9 of verification: required scopes, required groups and a custom check.
//!
//! Rules belong to one [`Verifier`](crate::Verifier), not to the keys: a verifier derived with
//! [`Verifier::require_any_group`](crate::Verifier::require_any_group) and friends shares the key
//! cache of the one it came from, so per-route rules cost no extra JWKS fetch.

use std::fmt;
use std::sync::Arc;

use crate::config::{validate_rule, ConfigError};
use crate::error::{AuthError, Forbidden};
use crate::jws::Str;

type Check<C> = Arc<dyn Fn(&C) -> bool + Send + Sync>;

pub(crate) struct Rules<C> {
    required_scopes: Vec<String>,
    /// The required scopes as one string, for the `scope` attribute of a 403.
    scope_attribute: Option<Arc<str>>,
    required_groups: Vec<String>,
    check: Option<Check<C>>,
}

impl<C> Rules<C> {
    pub(crate) fn new(scopes: Vec<String>, groups: Vec<String>) -> Self {
        Self {
            scope_attribute: (!scopes.is_empty()).then(|| scopes.join(" ").into()),
            required_scopes: scopes,
            required_groups: groups,
            check: None,
        }
    }

    pub(crate) fn with_scopes<I, S>(&self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.required_scopes.clone();
        for scope in scopes {
            let scope = scope.into();
            validate_rule(&scope)?;
            all.push(scope);
        }
        Ok(Self {
            check: self.check.clone(),
            ..Self::new(all, self.required_groups.clone())
        })
    }

    pub(crate) fn with_groups<I, S>(&self, groups: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.required_groups.clone();
        for group in groups {
            let group = group.into();
            validate_rule(&group)?;
            all.push(group);
        }
        Ok(Self {
            check: self.check.clone(),
            ..Self::new(self.required_scopes.clone(), all)
        })
    }

    /// Adds `check`; an earlier check keeps running too (both must pass), so a verifier
    /// derived for one route can never drop a check of the one it came from.
    pub(crate) fn with_check(&self, check: Check<C>) -> Self
    where
        C: 'static,
    {
        let check: Check<C> = match &self.check {
            Some(earlier) => {
                let earlier = Arc::clone(earlier);
                Arc::new(move |claims: &C| earlier(claims) && check(claims))
            }
            None => check,
        };
        Self {
            check: Some(check),
            ..Self::new(self.required_scopes.clone(), self.required_groups.clone())
        }
    }

    /// Every required scope in `scope`, then at least one required group in `groups`.
    pub(crate) fn check_claims(
        &self,
        scope: Option<&str>,
        groups: Option<&[Str<'_>]>,
    ) -> Result<(), AuthError> {
        if !self.required_scopes.is_empty() {
            let granted = scope.unwrap_or("");
            let has_all = self
                .required_scopes
                .iter()
                .all(|required| granted.split(' ').any(|s| s == required));
            if !has_all {
                return Err(AuthError::InsufficientScope {
                    reason: Forbidden::MissingScope,
                    scope: self.scope_attribute.clone(),
                });
            }
        }
        if !self.required_groups.is_empty() {
            let in_one = groups
                .unwrap_or(&[])
                .iter()
                .any(|g| self.required_groups.iter().any(|r| r == &**g));
            if !in_one {
                return Err(AuthError::InsufficientScope {
                    reason: Forbidden::MissingGroup,
                    scope: None,
                });
            }
        }
        Ok(())
    }

    /// The custom check on the typed claims.
    pub(crate) fn check_typed(&self, claims: &C) -> Result<(), AuthError> {
        match &self.check {
            Some(check) if !check(claims) => Err(AuthError::InsufficientScope {
                reason: Forbidden::CheckFailed,
                scope: None,
            }),
            _ => Ok(()),
        }
    }
}

impl<C> fmt::Debug for Rules<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("required_scopes", &self.required_scopes)
            .field("required_groups", &self.required_groups)
            .field("check", &self.check.is_some())
            .finish()
    }
}

//! The property aggregate: one merchant site. Its events live in `property-<id>`; the uniqueness of
//! its domain is reserved by a `DomainClaimed` event in `domain-<domain>`, written in the same
//! append with expected state "no stream".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Domain, DomainError, Event, PropertyCredentials, PropertyId, PropertyName, Timezone};

/// Command: register a new property.
#[derive(Debug, Clone)]
pub struct RegisterProperty {
    pub id: PropertyId,
    pub domain: Domain,
    pub timezone: Timezone,
    pub name: PropertyName,
    pub credentials: PropertyCredentials,
    /// Minutes without a hit that end a visit; `None` for the default (30).
    pub session_timeout_minutes: Option<u32>,
    pub at: DateTime<Utc>,
}

/// Event: a property was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyRegistered {
    pub property_id: PropertyId,
    pub domain: Domain,
    pub timezone: Timezone,
    pub name: PropertyName,
    #[serde(flatten)]
    pub credentials: PropertyCredentials,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_minutes: Option<u32>,
    pub registered_at: DateTime<Utc>,
}

/// Event: a domain was reserved for a property. Lives in the domain's claim stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainClaimed {
    pub domain: Domain,
    pub property_id: PropertyId,
}

/// Command: set the extra hostnames a property accepts browser hits from.
#[derive(Debug, Clone)]
pub struct AllowHostnames {
    pub hostnames: Vec<String>,
}

/// Event: the hostnames a property accepts browser hits from, besides its domain and subdomains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostnamesAllowed {
    pub property_id: PropertyId,
    pub hostnames: Vec<String>,
}

/// A goal: a custom event name, or a page path pattern (`*` matches anything) for pageviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

impl Goal {
    /// Trimmed, if it is exactly one custom event name (1–120 characters) or one page path
    /// pattern (starting with `/`, at most 2,000 characters).
    pub fn normalised(self) -> Option<Goal> {
        let trim = |s: Option<String>| s.map(|s| s.trim().to_owned());
        let goal = Goal {
            event: trim(self.event),
            page: trim(self.page),
        };
        let valid = match (&goal.event, &goal.page) {
            (Some(e), None) => (1..=120).contains(&e.chars().count()),
            (None, Some(p)) => p.starts_with('/') && p.chars().count() <= 2000,
            _ => false,
        };
        valid.then_some(goal)
    }

    /// How reports name it: the event name, or `Visit <page>`.
    pub fn label(&self) -> String {
        match (&self.event, &self.page) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) => format!("Visit {p}"),
            (None, None) => String::new(),
        }
    }
}

/// Command: set a property's goals (replacing the previous ones).
#[derive(Debug, Clone)]
pub struct SetGoals {
    pub goals: Vec<Goal>,
}

/// Event: a property's goals. Goals are applied when reports are queried, so they also cover
/// hits recorded before the goal was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalsSet {
    pub property_id: PropertyId,
    pub goals: Vec<Goal>,
}

/// A funnel: 2 to 8 steps, each a custom event name or a page pattern (as a goal is). A visitor
/// completes step k by hitting steps 1..k in this order within one visit, anything in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funnel {
    pub name: String,
    pub steps: Vec<Goal>,
}

impl Funnel {
    pub const MAX_STEPS: usize = 8;

    /// Trimmed, if its name has 1 to 120 characters and it has 2 to 8 valid steps.
    pub fn normalised(self) -> Option<Funnel> {
        let name = self.name.trim().to_owned();
        let named =
            (1..=120).contains(&name.chars().count()) && !name.chars().any(char::is_control);
        if !named || !(2..=Self::MAX_STEPS).contains(&self.steps.len()) {
            return None;
        }
        let steps = self
            .steps
            .into_iter()
            .map(Goal::normalised)
            .collect::<Option<Vec<_>>>()?;
        Some(Funnel { name, steps })
    }
}

/// Command: set a property's funnels (replacing the previous ones).
#[derive(Debug, Clone)]
pub struct SetFunnels {
    pub funnels: Vec<Funnel>,
}

/// Event: a property's funnels. Like goals, they are applied when reports are queried, so they
/// cover hits recorded before the funnel was defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelsSet {
    pub property_id: PropertyId,
    pub funnels: Vec<Funnel>,
}

/// A link that opens one property's dashboard, read-only, for whoever holds its token (as
/// Plausible's shared links do). It grants the report queries of that property and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLink {
    pub id: uuid::Uuid,
    pub name: PropertyName,
    pub token: String,
    pub created_at: DateTime<Utc>,
}

/// Command: create a shared link (its id, token and time are chosen by the caller).
#[derive(Debug, Clone)]
pub struct CreateSharedLink {
    pub link: SharedLink,
}

/// Event: a shared link was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedLinkCreated {
    pub property_id: PropertyId,
    #[serde(flatten)]
    pub link: SharedLink,
}

/// Command: revoke a shared link; its token opens nothing from then on.
#[derive(Debug, Clone)]
pub struct RevokeSharedLink {
    pub link_id: uuid::Uuid,
}

/// Event: a shared link was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedLinkRevoked {
    pub property_id: PropertyId,
    pub link_id: uuid::Uuid,
}

/// Whether a browser hit from page host `host` may be recorded for a property: its domain, any
/// subdomain of it, or an allowed hostname (`*.example.com` allows the subdomains of example.com).
pub fn hostname_allowed(domain: &str, allowed: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let matches = |pattern: &str| match pattern.strip_prefix("*.") {
        Some(parent) => host.ends_with(&format!(".{parent}")),
        None => host == pattern || host.ends_with(&format!(".{pattern}")),
    };
    matches(domain) || allowed.iter().any(|a| matches(a))
}

/// The property aggregate's state, rebuilt from its stream.
#[derive(Debug, Clone, Default)]
pub struct Property {
    registered: Option<PropertyRegistered>,
    /// The ids of the shared links not revoked.
    shared_links: Vec<uuid::Uuid>,
}

impl Property {
    /// Decides which events registering produces. The domain claim goes to a separate stream; the
    /// caller appends both atomically where the log allows it.
    pub fn handle(
        &self,
        cmd: RegisterProperty,
    ) -> Result<(PropertyRegistered, DomainClaimed), DomainError> {
        if self.registered.is_some() {
            return Err(DomainError::PropertyAlreadyRegistered);
        }
        if cmd
            .session_timeout_minutes
            .is_some_and(|m| !(1..=1440).contains(&m))
        {
            return Err(DomainError::InvalidSessionTimeout);
        }
        let claim = DomainClaimed {
            domain: cmd.domain.clone(),
            property_id: cmd.id,
        };
        let registered = PropertyRegistered {
            property_id: cmd.id,
            domain: cmd.domain,
            timezone: cmd.timezone,
            name: cmd.name,
            credentials: cmd.credentials,
            session_timeout_minutes: cmd.session_timeout_minutes,
            registered_at: cmd.at,
        };
        Ok((registered, claim))
    }

    /// Validates and normalises the hostnames (`shop.example`, `*.shop.example`).
    pub fn allow_hostnames(&self, cmd: AllowHostnames) -> Result<HostnamesAllowed, DomainError> {
        let Some(registered) = &self.registered else {
            return Err(DomainError::PropertyNotRegistered);
        };
        if cmd.hostnames.len() > 100 {
            return Err(DomainError::InvalidHostnames);
        }
        let mut hostnames = Vec::with_capacity(cmd.hostnames.len());
        for h in cmd.hostnames {
            let (wildcard, name) = match h.trim().strip_prefix("*.") {
                Some(rest) => ("*.", rest.to_owned()),
                None => ("", h.trim().to_owned()),
            };
            let name = Domain::parse(&name).map_err(|_| DomainError::InvalidHostnames)?;
            let normalised = format!("{wildcard}{name}");
            if !hostnames.contains(&normalised) {
                hostnames.push(normalised);
            }
        }
        Ok(HostnamesAllowed {
            property_id: registered.property_id,
            hostnames,
        })
    }

    /// Validates the goals: each a custom event name (1–120 characters) or a page path pattern
    /// starting with `/`, at most 100, no duplicates.
    pub fn set_goals(&self, cmd: SetGoals) -> Result<GoalsSet, DomainError> {
        let Some(registered) = &self.registered else {
            return Err(DomainError::PropertyNotRegistered);
        };
        if cmd.goals.len() > 100 {
            return Err(DomainError::InvalidGoals);
        }
        let mut goals: Vec<Goal> = Vec::with_capacity(cmd.goals.len());
        for g in cmd.goals {
            let goal = g.normalised().ok_or(DomainError::InvalidGoals)?;
            if !goals.contains(&goal) {
                goals.push(goal);
            }
        }
        Ok(GoalsSet {
            property_id: registered.property_id,
            goals,
        })
    }

    /// Validates the funnels: at most 50, each valid, with distinct names.
    pub fn set_funnels(&self, cmd: SetFunnels) -> Result<FunnelsSet, DomainError> {
        let Some(registered) = &self.registered else {
            return Err(DomainError::PropertyNotRegistered);
        };
        if cmd.funnels.len() > 50 {
            return Err(DomainError::InvalidFunnels);
        }
        let mut funnels: Vec<Funnel> = Vec::with_capacity(cmd.funnels.len());
        for f in cmd.funnels {
            let f = f.normalised().ok_or(DomainError::InvalidFunnels)?;
            if funnels.iter().any(|g| g.name == f.name) {
                return Err(DomainError::InvalidFunnels);
            }
            funnels.push(f);
        }
        Ok(FunnelsSet {
            property_id: registered.property_id,
            funnels,
        })
    }

    /// A property has at most this many live shared links.
    pub const MAX_SHARED_LINKS: usize = 100;

    pub fn create_shared_link(
        &self,
        cmd: CreateSharedLink,
    ) -> Result<SharedLinkCreated, DomainError> {
        let Some(registered) = &self.registered else {
            return Err(DomainError::PropertyNotRegistered);
        };
        if self.shared_links.len() >= Self::MAX_SHARED_LINKS {
            return Err(DomainError::TooManySharedLinks);
        }
        Ok(SharedLinkCreated {
            property_id: registered.property_id,
            link: cmd.link,
        })
    }

    pub fn revoke_shared_link(
        &self,
        cmd: RevokeSharedLink,
    ) -> Result<SharedLinkRevoked, DomainError> {
        let Some(registered) = &self.registered else {
            return Err(DomainError::PropertyNotRegistered);
        };
        if !self.shared_links.contains(&cmd.link_id) {
            return Err(DomainError::SharedLinkNotFound);
        }
        Ok(SharedLinkRevoked {
            property_id: registered.property_id,
            link_id: cmd.link_id,
        })
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PropertyRegistered(e) => self.registered = Some(e.clone()),
            Event::SharedLinkCreated(e) => self.shared_links.push(e.link.id),
            Event::SharedLinkRevoked(e) => self.shared_links.retain(|id| *id != e.link_id),
            Event::HostnamesAllowed(_)
            | Event::GoalsSet(_)
            | Event::FunnelsSet(_)
            | Event::DomainClaimed(_)
            | Event::HitRecorded(_)
            | Event::AggregatesImported(_)
            | Event::ImportDeleted(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_its_subdomains_and_allowed_hostnames_may_send() {
        let allowed = vec!["127.0.0.1".to_owned(), "*.cdn.example".to_owned()];
        assert!(hostname_allowed("shop.example", &[], "shop.example"));
        assert!(hostname_allowed("shop.example", &[], "blog.Shop.example"));
        assert!(!hostname_allowed("shop.example", &[], "evilshop.example"));
        assert!(hostname_allowed("shop.example", &allowed, "127.0.0.1"));
        assert!(hostname_allowed("shop.example", &allowed, "a.cdn.example"));
        assert!(!hostname_allowed("shop.example", &allowed, "cdn.example"));
    }

    #[test]
    fn given_registered_when_allowing_hostnames_then_they_are_normalised() {
        let mut property = Property::default();
        assert_eq!(
            property
                .allow_hostnames(AllowHostnames { hostnames: vec![] })
                .unwrap_err(),
            DomainError::PropertyNotRegistered
        );
        let (registered, _) = property.handle(register()).unwrap();
        property.apply(&Event::PropertyRegistered(registered));
        let e = property
            .allow_hostnames(AllowHostnames {
                hostnames: vec![
                    "*.CDN.example".into(),
                    "a.example".into(),
                    "a.example".into(),
                ],
            })
            .unwrap();
        assert_eq!(e.hostnames, vec!["*.cdn.example", "a.example"]);
        let bad = AllowHostnames {
            hostnames: vec!["http://x".into()],
        };
        assert_eq!(
            property.allow_hostnames(bad).unwrap_err(),
            DomainError::InvalidHostnames
        );
    }

    fn register() -> RegisterProperty {
        RegisterProperty {
            id: PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap(),
            domain: Domain::parse("shop.example").unwrap(),
            timezone: Timezone::parse("Europe/Berlin").unwrap(),
            name: PropertyName::parse("Shop").unwrap(),
            credentials: PropertyCredentials {
                measurement_id: "G-ABCDEFGHIJ".into(),
                api_secret: "secret".into(),
                read_key: "read".into(),
            },
            session_timeout_minutes: None,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn funnels_have_two_to_eight_valid_steps_and_distinct_names() {
        let mut property = Property::default();
        let (registered, _) = property.handle(register()).unwrap();
        property.apply(&Event::PropertyRegistered(registered));
        let page = |p: &str| Goal {
            event: None,
            page: Some(p.into()),
        };
        let event = |e: &str| Goal {
            event: Some(e.into()),
            page: None,
        };
        let funnel = |name: &str, steps: Vec<Goal>| Funnel {
            name: name.into(),
            steps,
        };
        let set = |funnels| property.set_funnels(SetFunnels { funnels });
        let ok = set(vec![funnel(
            " Checkout ",
            vec![page("/cart "), event("Purchase")],
        )])
        .unwrap();
        assert_eq!(ok.funnels[0].name, "Checkout");
        assert_eq!(ok.funnels[0].steps[0], page("/cart"));
        for bad in [
            vec![funnel("One step", vec![page("/")])],
            vec![funnel("Nine", vec![page("/"); 9])],
            vec![funnel("", vec![page("/"), page("/b")])],
            vec![funnel("Bad step", vec![page("no-slash"), page("/b")])],
            vec![
                funnel("Twice", vec![page("/"), page("/b")]),
                funnel("Twice", vec![page("/"), page("/c")]),
            ],
        ] {
            assert_eq!(set(bad).unwrap_err(), DomainError::InvalidFunnels);
        }
    }

    #[test]
    fn shared_links_are_created_and_revoked_once() {
        let mut property = Property::default();
        let link = SharedLink {
            id: uuid::Uuid::from_u128(7),
            name: PropertyName::parse("Team").unwrap(),
            token: "t".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let create = || CreateSharedLink { link: link.clone() };
        let revoke = || RevokeSharedLink { link_id: link.id };
        assert_eq!(
            property.create_shared_link(create()).unwrap_err(),
            DomainError::PropertyNotRegistered
        );
        let (registered, _) = property.handle(register()).unwrap();
        property.apply(&Event::PropertyRegistered(registered));
        assert_eq!(
            property.revoke_shared_link(revoke()).unwrap_err(),
            DomainError::SharedLinkNotFound
        );
        let created = property.create_shared_link(create()).unwrap();
        assert_eq!(created.link, link);
        property.apply(&Event::SharedLinkCreated(created));
        let revoked = property.revoke_shared_link(revoke()).unwrap();
        property.apply(&Event::SharedLinkRevoked(revoked));
        assert_eq!(
            property.revoke_shared_link(revoke()).unwrap_err(),
            DomainError::SharedLinkNotFound
        );
    }

    #[test]
    fn given_no_events_when_register_then_registered_and_domain_claimed() {
        let (registered, claim) = Property::default().handle(register()).unwrap();
        assert_eq!(registered.domain.as_str(), "shop.example");
        assert_eq!(claim.property_id, registered.property_id);
        assert_eq!(claim.domain, registered.domain);
    }

    #[test]
    fn given_registered_when_register_again_then_refused() {
        let mut property = Property::default();
        let (registered, _) = property.handle(register()).unwrap();
        property.apply(&Event::PropertyRegistered(registered));
        assert_eq!(
            property.handle(register()).unwrap_err(),
            DomainError::PropertyAlreadyRegistered
        );
    }
}

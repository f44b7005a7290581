//! Where a visit came from: its source, campaign tags and GA4 default channel group.

use crate::domain::clean_text;

/// GA4's default channel groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Direct,
    CrossNetwork,
    PaidShopping,
    PaidSearch,
    PaidSocial,
    PaidVideo,
    Display,
    PaidOther,
    OrganicShopping,
    OrganicSocial,
    OrganicVideo,
    OrganicSearch,
    Referral,
    Email,
    Affiliates,
    Audio,
    Sms,
    MobilePush,
    Unassigned,
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Direct => "Direct",
            Self::CrossNetwork => "Cross-network",
            Self::PaidShopping => "Paid Shopping",
            Self::PaidSearch => "Paid Search",
            Self::PaidSocial => "Paid Social",
            Self::PaidVideo => "Paid Video",
            Self::Display => "Display",
            Self::PaidOther => "Paid Other",
            Self::OrganicShopping => "Organic Shopping",
            Self::OrganicSocial => "Organic Social",
            Self::OrganicVideo => "Organic Video",
            Self::OrganicSearch => "Organic Search",
            Self::Referral => "Referral",
            Self::Email => "Email",
            Self::Affiliates => "Affiliates",
            Self::Audio => "Audio",
            Self::Sms => "SMS",
            Self::MobilePush => "Mobile Push Notifications",
            Self::Unassigned => "Unassigned",
        }
    }
}

/// The kinds of site GA4's channel rules look a source up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    Search,
    Social,
    Video,
    Shopping,
}

/// Known sources: display name, kind, host names (a leading label such as `google` matches every
/// country domain) and `utm_source` aliases. A short list of the big ones; others show as their
/// host name, with the channel their medium gives.
const SOURCES: &[(&str, SiteKind, &[&str], &[&str])] = &[
    ("Google", SiteKind::Search, &["google"], &["google"]),
    ("Bing", SiteKind::Search, &["bing.com"], &["bing"]),
    (
        "DuckDuckGo",
        SiteKind::Search,
        &["duckduckgo.com"],
        &["duckduckgo"],
    ),
    (
        "Yahoo!",
        SiteKind::Search,
        &["search.yahoo.com", "yahoo.com"],
        &["yahoo"],
    ),
    (
        "Yandex",
        SiteKind::Search,
        &["yandex", "ya.ru"],
        &["yandex"],
    ),
    ("Baidu", SiteKind::Search, &["baidu.com"], &["baidu"]),
    ("Ecosia", SiteKind::Search, &["ecosia.org"], &["ecosia"]),
    ("Brave", SiteKind::Search, &["search.brave.com"], &["brave"]),
    ("Qwant", SiteKind::Search, &["qwant.com"], &["qwant"]),
    ("Naver", SiteKind::Search, &["naver.com"], &["naver"]),
    (
        "Startpage",
        SiteKind::Search,
        &["startpage.com"],
        &["startpage"],
    ),
    (
        "Facebook",
        SiteKind::Social,
        &["facebook.com", "fb.com", "fb.me"],
        &["facebook", "fb"],
    ),
    (
        "Instagram",
        SiteKind::Social,
        &["instagram.com"],
        &["instagram", "ig"],
    ),
    (
        "Twitter",
        SiteKind::Social,
        &["twitter.com", "t.co", "x.com"],
        &["twitter", "x"],
    ),
    (
        "LinkedIn",
        SiteKind::Social,
        &["linkedin.com", "lnkd.in"],
        &["linkedin"],
    ),
    ("Reddit", SiteKind::Social, &["reddit.com"], &["reddit"]),
    (
        "Pinterest",
        SiteKind::Social,
        &["pinterest.com", "pin.it"],
        &["pinterest"],
    ),
    ("TikTok", SiteKind::Social, &["tiktok.com"], &["tiktok"]),
    (
        "Snapchat",
        SiteKind::Social,
        &["snapchat.com"],
        &["snapchat"],
    ),
    ("Quora", SiteKind::Social, &["quora.com"], &["quora"]),
    ("VKontakte", SiteKind::Social, &["vk.com"], &["vk"]),
    ("Threads", SiteKind::Social, &["threads.net"], &["threads"]),
    (
        "Hacker News",
        SiteKind::Social,
        &["news.ycombinator.com"],
        &["hackernews", "hn"],
    ),
    (
        "YouTube",
        SiteKind::Video,
        &["youtube.com", "youtu.be"],
        &["youtube"],
    ),
    ("Vimeo", SiteKind::Video, &["vimeo.com"], &["vimeo"]),
    ("Twitch", SiteKind::Video, &["twitch.tv"], &["twitch"]),
    (
        "Dailymotion",
        SiteKind::Video,
        &["dailymotion.com"],
        &["dailymotion"],
    ),
    ("Amazon", SiteKind::Shopping, &["amazon"], &["amazon"]),
    ("eBay", SiteKind::Shopping, &["ebay"], &["ebay"]),
    ("Etsy", SiteKind::Shopping, &["etsy.com"], &["etsy"]),
    (
        "Walmart",
        SiteKind::Shopping,
        &["walmart.com"],
        &["walmart"],
    ),
];

/// Strips `www.` and `m.` and lower-cases a host.
fn bare_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    host.strip_prefix("m.").unwrap_or(host).to_owned()
}

fn known_by_host(host: &str) -> Option<(&'static str, SiteKind)> {
    SOURCES.iter().find_map(|(name, kind, hosts, _)| {
        hosts
            .iter()
            .any(|h| {
                if h.contains('.') {
                    host == *h || host.ends_with(&format!(".{h}"))
                } else {
                    // A bare label: `google` matches google.com, google.co.uk, news.google.de.
                    host.split('.').any(|label| label == *h)
                }
            })
            .then_some((*name, *kind))
    })
}

fn known_by_name(source: &str) -> Option<(&'static str, SiteKind)> {
    let s = source.trim().to_ascii_lowercase();
    SOURCES.iter().find_map(|(name, kind, hosts, aliases)| {
        (aliases.contains(&s.as_str())
            || name.eq_ignore_ascii_case(&s)
            || hosts.contains(&s.as_str()))
        .then_some((*name, *kind))
    })
}

/// How a visit arrived: its source, referrer, campaign tags and GA4 channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acquisition {
    /// A known site's name (`Google`), the referrer's host, the `utm_source`, or `Direct / None`.
    pub source: String,
    /// The external referrer without query or fragment; empty for direct visits.
    pub referrer: String,
    pub channel: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_content: String,
    pub utm_term: String,
    /// The ad click id parameter the landing URL carried (`gclid`, `fbclid`, `msclkid`, …).
    pub click_id: String,
}

pub const DIRECT: &str = "Direct / None";

impl Acquisition {
    /// Derives acquisition from a landing URL and its referrer. A referrer on the property's own
    /// domain (or a subdomain of it) is internal, not a source.
    pub fn of(url: &str, referrer: Option<&str>, own_domain: &str) -> Self {
        let mut a = Self::default();
        if let Ok(u) = url::Url::parse(url) {
            for (k, v) in u.query_pairs() {
                // Decoded values may hold what the URL could only carry encoded (`%00`).
                let v = clean_text(&v).trim().to_owned();
                match k.as_ref() {
                    "utm_source" => a.utm_source = v,
                    "utm_medium" => a.utm_medium = v,
                    "utm_campaign" => a.utm_campaign = v,
                    "utm_content" => a.utm_content = v,
                    "utm_term" => a.utm_term = v,
                    "gclid" | "gbraid" | "wbraid" | "dclid" | "fbclid" | "msclkid" | "ttclid"
                    | "twclid" | "li_fat_id"
                        if a.click_id.is_empty() =>
                    {
                        a.click_id = k.into_owned()
                    }
                    _ => {}
                }
            }
        }
        let own = bare_host(own_domain);
        let external = referrer
            .and_then(|r| url::Url::parse(r).ok())
            .filter(|r| matches!(r.scheme(), "http" | "https" | "android-app"))
            .and_then(|r| {
                let host = bare_host(r.host_str()?);
                let internal = host == own || host.ends_with(&format!(".{own}"));
                (!internal && !host.is_empty()).then_some((host, r))
            });
        let referred = external.as_ref().map(|(host, _)| known_by_host(host));
        if let Some((host, r)) = &external {
            a.referrer = format!("{}://{}{}", r.scheme(), host, r.path());
        }

        // Source and medium, as GA4 would attribute them.
        let paid_click = match a.click_id.as_str() {
            "gclid" | "gbraid" | "wbraid" | "dclid" => Some("Google"),
            "msclkid" => Some("Bing"),
            _ => None,
        };
        let (source, kind) = if !a.utm_source.is_empty() {
            match known_by_name(&a.utm_source) {
                Some((name, kind)) => (name.to_owned(), Some(kind)),
                None => (a.utm_source.clone(), None),
            }
        } else if let Some(name) = paid_click {
            (name.to_owned(), Some(SiteKind::Search))
        } else {
            match (&external, referred.flatten()) {
                (_, Some((name, kind))) => (name.to_owned(), Some(kind)),
                (Some((host, _)), None) => (host.clone(), None),
                (None, _) => (DIRECT.to_owned(), None),
            }
        };
        let medium = if !a.utm_medium.is_empty() {
            a.utm_medium.to_ascii_lowercase()
        } else if paid_click.is_some() && a.utm_source.is_empty() {
            "cpc".to_owned()
        } else if source == DIRECT {
            "(none)".to_owned()
        } else if kind == Some(SiteKind::Search) && a.utm_source.is_empty() {
            "organic".to_owned()
        } else if external.is_some() && a.utm_source.is_empty() {
            "referral".to_owned()
        } else {
            String::new()
        };
        a.channel = channel(&source, &medium, &a.utm_campaign.to_ascii_lowercase(), kind)
            .as_str()
            .to_owned();
        a.source = source;
        a
    }
}

/// GA4's default channel grouping rules, in GA4's order.
fn channel(source: &str, medium: &str, campaign: &str, kind: Option<SiteKind>) -> Channel {
    let source_lc = source.to_ascii_lowercase();
    let paid = medium.contains("cp")
        || medium == "ppc"
        || medium == "retargeting"
        || medium.starts_with("paid");
    let shop_campaign = campaign.contains("shop");
    let is = |k: SiteKind| kind == Some(k);
    let email = |s: &str| matches!(s, "email" | "e-mail" | "e_mail" | "e mail" | "newsletter");
    if source == DIRECT && matches!(medium, "(none)" | "(not set)" | "") {
        return Channel::Direct;
    }
    if campaign.contains("cross-network") {
        Channel::CrossNetwork
    } else if paid && (is(SiteKind::Shopping) || shop_campaign) {
        Channel::PaidShopping
    } else if paid && is(SiteKind::Search) {
        Channel::PaidSearch
    } else if paid && is(SiteKind::Social) {
        Channel::PaidSocial
    } else if paid && is(SiteKind::Video) {
        Channel::PaidVideo
    } else if matches!(
        medium,
        "display" | "banner" | "expandable" | "interstitial" | "cpm"
    ) {
        Channel::Display
    } else if paid {
        Channel::PaidOther
    } else if is(SiteKind::Shopping) || shop_campaign {
        Channel::OrganicShopping
    } else if is(SiteKind::Social)
        || matches!(
            medium,
            "social" | "social-network" | "social-media" | "sm" | "social network" | "social media"
        )
    {
        Channel::OrganicSocial
    } else if is(SiteKind::Video) || medium.contains("video") {
        Channel::OrganicVideo
    } else if is(SiteKind::Search) || medium == "organic" {
        Channel::OrganicSearch
    } else if matches!(medium, "referral" | "app" | "link") {
        Channel::Referral
    } else if email(&source_lc) || email(medium) {
        Channel::Email
    } else if medium == "affiliate" {
        Channel::Affiliates
    } else if medium == "audio" {
        Channel::Audio
    } else if source_lc == "sms" || medium == "sms" {
        Channel::Sms
    } else if medium.ends_with("push")
        || medium.contains("mobile")
        || medium.contains("notification")
        || source_lc == "firebase"
    {
        Channel::MobilePush
    } else {
        Channel::Unassigned
    }
}

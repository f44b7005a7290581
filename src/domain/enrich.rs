//! Enrichment: pure functions that derive report dimensions from a hit's raw fields. Projections
//! call them, so fixing one and rebuilding fixes history.

use super::{clean_text, Geo, HitRecorded, ReportedDevice};

/// Where a hit happened, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Host without a leading `www.`, lower case.
    pub hostname: String,
    /// Path without the query string; with `hash_mode`, the fragment too (`/#/cart`).
    pub pathname: String,
}

impl Page {
    pub fn of(url: &str, hash_mode: bool) -> Self {
        match url::Url::parse(url) {
            Ok(u) => {
                let host = u.host_str().unwrap_or("").to_ascii_lowercase();
                let hostname = host.strip_prefix("www.").unwrap_or(&host).to_owned();
                let mut pathname = u.path().to_owned();
                if hash_mode {
                    if let Some(fragment) = u.fragment().filter(|f| !f.is_empty()) {
                        pathname.push('#');
                        pathname.push_str(fragment);
                    }
                }
                Self { hostname, pathname }
            }
            // Collection only accepts absolute http(s) URLs; keep anything else visible as is.
            Err(_) => Self {
                hostname: String::new(),
                pathname: url.to_owned(),
            },
        }
    }
}

/// Device category, as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCategory {
    Desktop,
    Mobile,
    Tablet,
}

impl DeviceCategory {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Desktop => "Desktop",
            Self::Mobile => "Mobile",
            Self::Tablet => "Tablet",
        }
    }
}

/// Browser, operating system and device of a user agent. Empty strings where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    /// `Desktop`, `Mobile` or `Tablet`; empty when unknown.
    pub device: String,
}

fn woothee() -> &'static woothee::parser::Parser {
    static PARSER: std::sync::OnceLock<woothee::parser::Parser> = std::sync::OnceLock::new();
    PARSER.get_or_init(woothee::parser::Parser::new)
}

fn bots() -> &'static isbot::Bots {
    static BOTS: std::sync::OnceLock<isbot::Bots> = std::sync::OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

impl Client {
    /// Parses a user agent with woothee (browsers, OSes, device classes); tablets, which woothee
    /// files under smartphones, are told apart by their tokens.
    pub fn of(user_agent: &str) -> Self {
        const UNKNOWN: &str = woothee::woothee::VALUE_UNKNOWN;
        let Some(r) = woothee().parse(user_agent) else {
            return Self::default();
        };
        let known = |s: &str| {
            if s == UNKNOWN {
                String::new()
            } else {
                s.to_owned()
            }
        };
        let tablet = ["iPad", "Tablet", "Kindle", "Silk/", "PlayBook"]
            .iter()
            .any(|t| user_agent.contains(t))
            || (user_agent.contains("Android") && !user_agent.contains("Mobile"));
        let device = match r.category {
            "pc" => Some(DeviceCategory::Desktop),
            "smartphone" | "mobilephone" if tablet => Some(DeviceCategory::Tablet),
            "smartphone" | "mobilephone" => Some(DeviceCategory::Mobile),
            _ => None,
        };
        let (os, os_version) = normalise_os(&known(r.os), &known(&r.os_version));
        Self {
            browser: match r.name {
                "Edge" => "Microsoft Edge".to_owned(),
                name => known(name),
            },
            browser_version: major_minor(&known(r.version)),
            os,
            os_version,
            device: device.map(|d| d.as_str().to_owned()).unwrap_or_default(),
        }
    }

    /// The client a server-side payload states; the same report values as [`Client::of`] gives.
    pub fn reported(d: &ReportedDevice) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let device = match d
            .category
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("desktop") => DeviceCategory::Desktop.as_str().to_owned(),
            Some("mobile" | "smartphone") => DeviceCategory::Mobile.as_str().to_owned(),
            Some("tablet") => DeviceCategory::Tablet.as_str().to_owned(),
            _ => String::new(),
        };
        let (os, os_version) = normalise_os(&text(&d.os), &text(&d.os_version));
        Self {
            browser: text(&d.browser),
            browser_version: major_minor(&text(&d.browser_version)),
            os,
            os_version,
            device,
        }
    }
}

/// woothee names some OSes by device or release (`iPhone`, `Windows 10`, `Mac OSX`); reports
/// want the OS family and its version.
fn normalise_os(os: &str, version: &str) -> (String, String) {
    let dotted = version.replace('_', ".");
    match os {
        "iPhone" | "iPad" | "iPod" => ("iOS".into(), major_minor(&dotted)),
        "Mac OSX" | "Mac OS Classic" => ("macOS".into(), major_minor(&dotted)),
        _ => match os.strip_prefix("Windows ") {
            Some(release) if !release.is_empty() => ("Windows".into(), release.to_owned()),
            _ => (os.to_owned(), major_minor(&dotted)),
        },
    }
}

/// `16.4.1` → `16.4`: versions are reported to the minor release.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Whether a user agent is a bot or crawler, by the `isbot` list (a port of the maintained npm
/// `isbot` patterns) and woothee's crawler list. A missing user agent (server-side hits) is not.
pub fn is_bot(user_agent: &str) -> bool {
    !user_agent.is_empty()
        && (bots().is_bot(user_agent)
            || woothee()
                .parse(user_agent)
                .is_some_and(|r| r.category == "crawler"))
}

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

/// What a visit is reported by, taken from its first hit: acquisition, client and geo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visit {
    pub acquisition: Acquisition,
    pub client: Client,
    pub geo: Geo,
}

impl Visit {
    /// The read-model columns of a visit, in the order of [`Visit::values`]; each is also the
    /// query API's `visit:<column>` dimension.
    pub const COLUMNS: [&'static str; 20] = [
        "source",
        "referrer",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "click_id",
        "device",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "country",
        "country_name",
        "region",
        "region_name",
        "city",
        "city_name",
    ];

    pub fn of(hit: &HitRecorded, own_domain: &str) -> Self {
        Self {
            acquisition: Acquisition::of(&hit.url, hit.referrer.as_deref(), own_domain),
            client: match &hit.device {
                Some(device) => Client::reported(device),
                None => Client::of(hit.user_agent.as_deref().unwrap_or("")),
            },
            geo: hit.geo.clone(),
        }
    }

    pub fn values(&self) -> [&str; 20] {
        let (a, c, g) = (&self.acquisition, &self.client, &self.geo);
        fn o(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        [
            &a.source,
            &a.referrer,
            &a.channel,
            &a.utm_source,
            &a.utm_medium,
            &a.utm_campaign,
            &a.utm_content,
            &a.utm_term,
            &a.click_id,
            &c.device,
            &c.browser,
            &c.browser_version,
            &c.os,
            &c.os_version,
            o(&g.country),
            o(&g.country_name),
            o(&g.region),
            o(&g.region_name),
            o(&g.city),
            o(&g.city_name),
        ]
    }

    pub fn from_values(v: [String; 20]) -> Self {
        let [source, referrer, channel, utm_source, utm_medium, utm_campaign, utm_content, utm_term, click_id, device, browser, browser_version, os, os_version, country, country_name, region, region_name, city, city_name] =
            v;
        let o = |s: String| (!s.is_empty()).then_some(s);
        Self {
            acquisition: Acquisition {
                source,
                referrer,
                channel,
                utm_source,
                utm_medium,
                utm_campaign,
                utm_content,
                utm_term,
                click_id,
            },
            client: Client {
                browser,
                browser_version,
                os,
                os_version,
                device,
            },
            geo: Geo {
                country: o(country),
                country_name: o(country_name),
                region: o(region),
                region_name: o(region_name),
                city: o(city),
                city_name: o(city_name),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_drop_queries_and_www_and_keep_fragments_in_hash_mode() {
        assert_eq!(
            Page::of("https://WWW.Shop.example/a/b?utm_source=x#top", false),
            Page {
                hostname: "shop.example".into(),
                pathname: "/a/b".into()
            }
        );
        assert_eq!(
            Page::of("https://shop.example/#/cart?x=1", true).pathname,
            "/#/cart?x=1"
        );
        assert_eq!(Page::of("https://shop.example", false).pathname, "/");
        assert_eq!(
            Page::of("https://blog.shop.example/p", false).hostname,
            "blog.shop.example"
        );
    }

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    #[test]
    fn user_agents_give_browser_os_and_device() {
        let c = Client::of(CHROME_WINDOWS);
        assert_eq!(
            (
                c.browser.as_str(),
                c.browser_version.as_str(),
                c.os.as_str(),
                c.os_version.as_str(),
                c.device.as_str()
            ),
            ("Chrome", "120.0", "Windows", "10", "Desktop")
        );
        let c = Client::of(SAFARI_IPHONE);
        assert_eq!(
            (
                c.browser.as_str(),
                c.os.as_str(),
                c.os_version.as_str(),
                c.device.as_str()
            ),
            ("Safari", "iOS", "17.1", "Mobile")
        );
        assert_eq!(Client::of(SAFARI_IPAD).device, "Tablet");
        assert_eq!(Client::of(CHROME_ANDROID_TABLET).device, "Tablet");
        let c = Client::of(FIREFOX_MAC);
        assert_eq!(
            (c.browser.as_str(), c.os.as_str(), c.device.as_str()),
            ("Firefox", "macOS", "Desktop")
        );
        assert_eq!(Client::of(""), Client::default());
    }

    #[test]
    fn bots_are_detected_and_people_are_not() {
        for bot in [
            GOOGLEBOT,
            "curl/8.4.0",
            "python-requests/2.31.0",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "HeadlessChrome/120.0",
        ] {
            assert!(is_bot(bot), "{bot}");
        }
        for person in [CHROME_WINDOWS, SAFARI_IPHONE, SAFARI_IPAD, FIREFOX_MAC, ""] {
            assert!(!is_bot(person), "{person}");
        }
    }

    fn acq(url: &str, referrer: Option<&str>) -> Acquisition {
        Acquisition::of(url, referrer, "shop.example")
    }

    #[test]
    fn every_default_channel_is_reachable() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            ("https://shop.example/", None, "Direct", DIRECT),
            (
                "https://shop.example/",
                Some("https://www.shop.example/cart"),
                "Direct",
                DIRECT,
            ),
            (
                "https://shop.example/",
                Some("https://blog.shop.example/post"),
                "Direct",
                DIRECT,
            ),
            (
                "https://shop.example/",
                Some("https://www.google.co.uk/"),
                "Organic Search",
                "Google",
            ),
            (
                "https://shop.example/",
                Some("https://duckduckgo.com/"),
                "Organic Search",
                "DuckDuckGo",
            ),
            (
                "https://shop.example/?gclid=abc",
                None,
                "Paid Search",
                "Google",
            ),
            (
                "https://shop.example/?utm_source=bing&utm_medium=cpc",
                None,
                "Paid Search",
                "Bing",
            ),
            (
                "https://shop.example/",
                Some("https://l.facebook.com/"),
                "Organic Social",
                "Facebook",
            ),
            (
                "https://shop.example/?utm_source=fb&utm_medium=paid_social",
                None,
                "Paid Social",
                "Facebook",
            ),
            (
                "https://shop.example/",
                Some("https://www.youtube.com/watch?v=1"),
                "Organic Video",
                "YouTube",
            ),
            (
                "https://shop.example/?utm_source=youtube&utm_medium=cpv",
                None,
                "Paid Video",
                "YouTube",
            ),
            (
                "https://shop.example/?utm_source=amazon&utm_medium=ppc",
                None,
                "Paid Shopping",
                "Amazon",
            ),
            (
                "https://shop.example/",
                Some("https://www.ebay.de/itm/1"),
                "Organic Shopping",
                "eBay",
            ),
            (
                "https://shop.example/?utm_source=partner&utm_medium=display",
                None,
                "Display",
                "partner",
            ),
            (
                "https://shop.example/?utm_source=partner&utm_medium=cpc",
                None,
                "Paid Other",
                "partner",
            ),
            (
                "https://shop.example/",
                Some("https://news.example.org/a?b=1"),
                "Referral",
                "news.example.org",
            ),
            (
                "https://shop.example/?utm_source=newsletter&utm_medium=email",
                None,
                "Email",
                "newsletter",
            ),
            (
                "https://shop.example/?utm_source=blogger&utm_medium=affiliate",
                None,
                "Affiliates",
                "blogger",
            ),
            (
                "https://shop.example/?utm_source=podcast&utm_medium=audio",
                None,
                "Audio",
                "podcast",
            ),
            (
                "https://shop.example/?utm_source=sms&utm_medium=text",
                None,
                "SMS",
                "sms",
            ),
            (
                "https://shop.example/?utm_source=app&utm_medium=push",
                None,
                "Mobile Push Notifications",
                "app",
            ),
            (
                "https://shop.example/?utm_source=x&utm_campaign=cross-network-q4",
                None,
                "Cross-network",
                "Twitter",
            ),
            (
                "https://shop.example/?utm_source=mystery",
                None,
                "Unassigned",
                "mystery",
            ),
        ];
        for (url, referrer, channel, source) in cases {
            let a = acq(url, *referrer);
            assert_eq!(
                (a.channel.as_str(), a.source.as_str()),
                (*channel, *source),
                "{url} {referrer:?}"
            );
        }
    }

    #[test]
    fn utm_tags_click_ids_and_referrers_are_kept() {
        let a = acq(
            "https://shop.example/?utm_source=Newsletter&utm_medium=email&utm_campaign=spring&utm_content=hero&utm_term=shoes&fbclid=x",
            Some("https://news.example.org/a/b?secret=1#f"),
        );
        assert_eq!(
            (
                a.utm_source.as_str(),
                a.utm_medium.as_str(),
                a.utm_campaign.as_str(),
                a.utm_content.as_str(),
                a.utm_term.as_str()
            ),
            ("Newsletter", "email", "spring", "hero", "shoes")
        );
        assert_eq!(a.click_id, "fbclid");
        assert_eq!(a.referrer, "https://news.example.org/a/b");
        assert_eq!(
            acq("https://shop.example/", Some("not a url")).source,
            DIRECT
        );
    }

    #[test]
    fn visits_round_trip_through_their_columns() {
        let hit_visit = Visit {
            acquisition: acq(
                "https://shop.example/?utm_source=x",
                Some("https://t.co/abc"),
            ),
            client: Client::of(SAFARI_IPHONE),
            geo: Geo {
                country: Some("GB".into()),
                city_name: Some("London".into()),
                ..Geo::default()
            },
        };
        let values = hit_visit.values().map(str::to_owned);
        assert_eq!(Visit::from_values(values), hit_visit);
    }
}

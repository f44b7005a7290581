//! The browser, operating system and device of a user agent (or of what a server-side payload
//! states), and bot detection.

use crate::domain::ReportedDevice;

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

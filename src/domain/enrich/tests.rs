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
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

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

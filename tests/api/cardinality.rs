//! Prop keys past a property's cap (`FOOTFALL_MAX_PROP_KEYS`) get no rollups, and reports on them
//! stay exact: they are read from the enriched hits.

use serde_json::{json, Value};

use crate::helpers::spawn_app_with;

/// A custom event with these props.
fn event(props: Value) -> Value {
    json!({"name": "Signup", "url": "https://shop.example/join", "domain": "shop.example",
        "props": props})
}

#[actix_web::test]
async fn prop_keys_past_the_cap_are_kept_out_of_the_rollups_and_still_answered_exactly() {
    let app = spawn_app_with(&[
        ("FOOTFALL_MAX_PROP_KEYS", "2"),
        ("FOOTFALL_PROJECTION_PARTITIONS", "2"),
    ])
    .await;
    let p = app.register("shop.example", "UTC").await;
    let key = p["read_key"].as_str().unwrap();
    let first = (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
    );
    let second = ("User-Agent", "Mozilla/5.0 (Macintosh) Safari/605.1.15");
    // One visitor (one partition) uses three keys in turn: `plan` and `tier` fill its two places,
    // `color` comes too late. Another visitor uses `plan` and `size`.
    let sent = [
        (first, json!({"plan": "pro"})),
        (first, json!({"plan": "free", "tier": "gold"})),
        (first, json!({"color": "red", "plan": "pro"})),
        (first, json!({"color": "blue"})),
        (first, json!({"color": "red"})),
        (second, json!({"plan": "pro", "size": "xl"})),
        (second, json!({"size": "xl"})),
    ];
    for (agent, props) in &sent {
        let res = app.post_event(&event(props.clone()), &[*agent]).await;
        assert_eq!(res.status, 202, "{}", res.text);
    }
    app.wait_projected().await;

    let breakdown = |prop: &str| {
        json!({"site_id": "shop.example", "metrics": ["visitors", "events"], "date_range": "all",
            "dimensions": [format!("event:props:{prop}")]})
    };
    let results = |res: crate::helpers::Response| {
        assert_eq!(res.status, 200, "{}", res.text);
        res.body["results"].clone()
    };
    let plan = results(app.query(key, &breakdown("plan")).await);
    let color = results(app.query(key, &breakdown("color")).await);
    let size = results(app.query(key, &breakdown("size")).await);
    let tier = results(app.query(key, &breakdown("tier")).await);
    eprintln!("plan {plan}\ncolor {color}\nsize {size}\ntier {tier}");
    assert_eq!(
        plan,
        json!([{"dimensions": ["pro"], "metrics": [2, 3]},
               {"dimensions": ["free"], "metrics": [1, 1]}])
    );
    // Ties in visitors are ordered by value, as in the rollups' answers.
    assert_eq!(
        color,
        json!([{"dimensions": ["blue"], "metrics": [1, 1]},
               {"dimensions": ["red"], "metrics": [1, 2]}])
    );
    assert_eq!(size, json!([{"dimensions": ["xl"], "metrics": [1, 2]}]));
    assert_eq!(tier, json!([{"dimensions": ["gold"], "metrics": [1, 1]}]));

    // The rollups hold only the admitted keys.
    let rolled: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT dimension FROM rollup_daily WHERE dimension LIKE 'prop:%' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    eprintln!("rolled up: {rolled:?}");
    assert!(!rolled.contains(&"prop:color".to_owned()), "{rolled:?}");
    assert!(rolled.contains(&"prop:plan".to_owned()) && rolled.contains(&"prop:tier".to_owned()));

    // Refused props are counted; the key list still names every key.
    let refused = app.metric("footfall_props_not_rolled_up_total").await;
    assert!(refused >= 3.0, "{refused}");
    let res = app
        .get("/api/v2/prop-keys?site_id=shop.example&date_range=all", key)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let mut keys: Vec<String> = serde_json::from_value(res.body["prop_keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, ["color", "plan", "size", "tier"]);

    // Which read model answers shows once the enriched hits are gone (a new query shape, so no
    // shared answer): the admitted key's rollups still answer, the refused key's hits do not.
    sqlx::query("DELETE FROM hits")
        .execute(&app.pool)
        .await
        .unwrap();
    let events_by = |prop: &str| {
        json!({"site_id": "shop.example", "metrics": ["events"], "date_range": "all",
            "dimensions": [format!("event:props:{prop}")]})
    };
    let plan = results(app.query(key, &events_by("plan")).await);
    let color = results(app.query(key, &events_by("color")).await);
    assert_eq!(
        plan,
        json!([{"dimensions": ["pro"], "metrics": [3]}, {"dimensions": ["free"], "metrics": [1]}])
    );
    assert_eq!(color, json!([]));
}

//! How subscriptions learn that the log grew: one watch of the head per set of categories, fed by
//! this process's appends and by NOTIFY from the others.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;

use super::CHANNEL;
use crate::eventlog::StreamFilter;

/// Turns NOTIFYs (`<position> <category>,…`, or a bare position from an older node) into wake-ups.
pub(super) async fn listen(pool: &PgPool, wakers: &Wakers) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let n = listener.recv().await?;
        let (position, categories) = match n.payload().split_once(' ') {
            Some((p, c)) => (p, Some(c.split(',').collect::<Vec<_>>())),
            None => (n.payload(), None),
        };
        if let Ok(position) = position.parse::<u64>() {
            wakers.appended(position, categories.as_deref());
        }
    }
}

/// Wakes subscriptions when the log grows in their categories: one watch of the head per distinct
/// set of categories. A subscription to other categories than an append's sleeps through it (and
/// its runner neither reads nor records a checkpoint); its poll interval still bounds how far it
/// lags.
#[derive(Default)]
pub(super) struct Wakers(std::sync::Mutex<Vec<(Vec<String>, watch::Sender<u64>)>>);

impl Wakers {
    pub(super) fn subscribe(&self, filter: &StreamFilter) -> watch::Receiver<u64> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, sender)) = all.iter().find(|(c, _)| *c == filter.categories) {
            return sender.subscribe();
        }
        let sender = watch::Sender::new(0);
        let receiver = sender.subscribe();
        all.push((filter.categories.clone(), sender));
        receiver
    }

    /// The log's head reached `position` with an append to `categories` (`None`: unknown).
    pub(super) fn appended(&self, position: u64, categories: Option<&[&str]>) {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (watched, sender) in all.iter() {
            let concerned = watched.is_empty()
                || categories.is_none_or(|cs| cs.iter().any(|c| watched.iter().any(|w| w == c)));
            if concerned {
                sender.send_if_modified(|h| {
                    let newer = position > *h;
                    *h = (*h).max(position);
                    newer
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_wakes_only_for_its_categories() {
        let wakers = Wakers::default();
        let imports = wakers.subscribe(&StreamFilter::categories(&["imports"]));
        let hits = wakers.subscribe(&StreamFilter::categories(&["property", "hits"]));
        let all = wakers.subscribe(&StreamFilter::all());
        wakers.appended(5, Some(&["hits"]));
        assert!(!imports.has_changed().unwrap());
        assert!(hits.has_changed().unwrap() && all.has_changed().unwrap());
        wakers.appended(6, Some(&["imports", "property"]));
        assert!(imports.has_changed().unwrap());
        assert_eq!(*imports.borrow(), 6);
        // A NOTIFY without categories (an older node) wakes every subscription.
        let mut imports = imports;
        imports.borrow_and_update();
        wakers.appended(7, None);
        assert!(imports.has_changed().unwrap());
        // Filters are shared: a second subscription to the same categories sees the same head.
        let again = wakers.subscribe(&StreamFilter::categories(&["imports"]));
        assert_eq!(*again.borrow(), 7);
    }
}

//! Geo lookup: an IP address to country, region and city, from a MaxMind-format (`.mmdb`) city
//! database. Pure once the database bytes are loaded; without a database, geo stays empty.

use std::net::IpAddr;

use maxminddb::geoip2;

use super::Geo;

/// A loaded MaxMind-format city (or country) database.
pub struct GeoDb(maxminddb::Reader<Vec<u8>>);

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GeoDb")
            .field(&self.0.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        maxminddb::Reader::from_source(bytes)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// Where an address is: ISO country code, ISO 3166-2 region (`GB-ENG`), GeoNames city id, and
    /// their English names. Unknown addresses (private, or not in the database) give an empty geo.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let found = self
            .0
            .lookup(ip)
            .ok()
            .and_then(|r| r.decode::<geoip2::City<'_>>().ok().flatten());
        let Some(c) = found else {
            return Geo::default();
        };
        let text = |s: Option<&str>| s.map(str::to_owned);
        let country = text(c.country.iso_code);
        let region = c.subdivisions.first();
        Geo {
            region: region
                .and_then(|r| r.iso_code)
                .zip(country.as_deref())
                .map(|(r, c)| format!("{c}-{r}")),
            region_name: region.and_then(|r| text(r.names.english)),
            city: c.city.geoname_id.map(|id| id.to_string()),
            city_name: text(c.city.names.english),
            country_name: text(c.country.names.english),
            country,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> GeoDb {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/GeoIP2-City-Test.mmdb"
        );
        GeoDb::from_bytes(std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn addresses_resolve_to_country_region_and_city() {
        let db = db();
        assert_eq!(
            db.lookup("81.2.69.142".parse().unwrap()),
            Geo {
                country: Some("GB".into()),
                country_name: Some("United Kingdom".into()),
                region: Some("GB-ENG".into()),
                region_name: Some("England".into()),
                city: Some("2643743".into()),
                city_name: Some("London".into()),
            }
        );
        let us = db.lookup("216.160.83.56".parse().unwrap());
        assert_eq!(
            (
                us.country.as_deref(),
                us.region.as_deref(),
                us.city_name.as_deref()
            ),
            (Some("US"), Some("US-WA"), Some("Milton"))
        );
        // A country without region or city.
        let bt = db.lookup("67.43.156.1".parse().unwrap());
        assert_eq!(
            (bt.country.as_deref(), bt.region, bt.city),
            (Some("BT"), None, None)
        );
    }

    #[test]
    fn unknown_and_private_addresses_give_empty_geo() {
        let db = db();
        assert_eq!(db.lookup("10.0.0.1".parse().unwrap()), Geo::default());
        assert_eq!(db.lookup("::1".parse().unwrap()), Geo::default());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(GeoDb::from_bytes(b"not a database".to_vec()).is_err());
    }
}

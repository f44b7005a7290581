//! The operator's API under `/api/admin`, behind the admin bearer token.

mod imports;
mod log;
mod projections;
mod properties;
mod shared_links;

use actix_web::web;

use super::ApiError;

/// Admin listings return 1 to 1,000 items a page.
pub(crate) fn check_page_limit(limit: usize) -> Result<(), ApiError> {
    if (1..=1000).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 1000",
        ))
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/admin")
            .route("/properties", web::post().to(properties::register))
            .route("/properties", web::get().to(properties::list))
            .route("/properties/{id}", web::get().to(properties::get))
            .route(
                "/properties/{id}/funnels",
                web::put().to(properties::set_funnels),
            )
            .route(
                "/properties/{id}/hostnames",
                web::put().to(properties::set_hostnames),
            )
            .route(
                "/properties/{id}/goals",
                web::put().to(properties::set_goals),
            )
            .route(
                "/properties/{id}/shared-links",
                web::post().to(shared_links::create),
            )
            .route(
                "/properties/{id}/shared-links",
                web::get().to(shared_links::list),
            )
            .route(
                "/properties/{id}/shared-links/{link_id}",
                web::delete().to(shared_links::revoke),
            )
            .service(
                web::resource("/properties/{id}/imports")
                    .route(web::post().to(imports::start))
                    .route(web::get().to(imports::list)),
            )
            .service(
                web::resource("/properties/{id}/imports/{import}")
                    .route(web::get().to(imports::status))
                    .route(web::delete().to(imports::delete)),
            )
            .route("/streams/{stream}", web::get().to(log::read_stream))
            .route("/log", web::get().to(log::head))
            .route("/projections", web::get().to(projections::list))
            .route(
                "/projections/{name}/parked",
                web::get().to(projections::parked),
            )
            .route(
                "/projections/{name}/parked/replay",
                web::post().to(projections::replay_parked),
            )
            .route(
                "/projections/{name}/rebuild",
                web::post().to(projections::rebuild),
            ),
    );
}

//! Stock levels, read from whatever stock store the server has (none in the adapter itself).

use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use maud::html;
use omniman_core::ports::Store;

use super::layout::{self, Section};
use super::session;
use crate::state::AppState;

/// One SKU's stock as the console shows it; quantities are the store's 3-decimal strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockRow {
    /// The SKU.
    pub sku: String,
    /// Quantity on hand.
    pub on_hand: String,
    /// Quantity taken by live holds.
    pub held: String,
    /// On hand less held.
    pub available: String,
}

/// A read-only source of stock levels for the console's stock page
/// ([`AppState::with_stock_levels`](crate::AppState::with_stock_levels)).
#[async_trait]
pub trait StockLevels: Send + Sync {
    /// Every SKU's levels, by SKU; `Err` is a message to show.
    async fn stock_levels(&self) -> Result<Vec<StockRow>, String>;
}

/// `GET /console/stock`.
pub(crate) async fn page<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let levels = match &state.stock {
        None => None,
        Some(source) => Some(source.stock_levels().await),
    };
    let body = html! {
        @match &levels {
            None => p class="empty" id="no-stock" { "No stock backend: this server keeps no stock levels." },
            Some(Err(message)) => p class="error" role="alert" { "The stock levels cannot be read: " (message) },
            Some(Ok(rows)) if rows.is_empty() => p class="empty" { "No SKU has a stock level yet." },
            Some(Ok(rows)) => table class="wide" {
                caption { "Stock by SKU" }
                thead { tr { th scope="col" { "SKU" } th scope="col" class="num" { "On hand" }
                    th scope="col" class="num" { "Held" } th scope="col" class="num" { "Available" } } }
                tbody {
                    @for row in rows {
                        tr { td { (row.sku) } td class="num" { (row.on_hand) } td class="num" { (row.held) } td class="num" { (row.available) } }
                    }
                }
            },
        }
    };
    layout::ok_page("Stock levels", Section::Stock, &signed, &body)
}

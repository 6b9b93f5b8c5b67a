package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole HTTP API.
func addRoutes(mux *http.ServeMux, cfg Config) {
	if cfg.Orders != nil {
		mux.Handle("POST /v1/orders", handleCreateOrder(cfg.Orders, cfg.Logger, cfg.MaxBodyBytes))
		mux.Handle("GET /v1/orders", handleListOrders(cfg.Orders, cfg.Logger))
		mux.Handle("GET /v1/orders/{id}", handleGetOrder(cfg.Orders, cfg.Logger))
		mux.Handle("POST /v1/orders/{id}/status", handleChangeOrderStatus(cfg.Orders, cfg.Logger, cfg.MaxBodyBytes))
	}
	if n := cfg.Notifications; n != nil {
		mux.Handle("POST /v1/subscriptions", handleCreateSubscription(n, cfg.Logger, cfg.MaxBodyBytes))
		mux.Handle("GET /v1/subscriptions", handleListSubscriptions(n, cfg.Logger))
		mux.Handle("GET /v1/subscriptions/{id}", handleGetSubscription(n, cfg.Logger))
		mux.Handle("PATCH /v1/subscriptions/{id}", handleUpdateSubscription(n, cfg.Logger, cfg.MaxBodyBytes))
		mux.Handle("DELETE /v1/subscriptions/{id}", handleDeleteSubscription(n, cfg.Logger))
		mux.Handle("GET /v1/deliveries", handleListDeliveries(n, cfg.Logger))
		mux.Handle("GET /v1/deliveries/{id}", handleGetDelivery(n, cfg.Logger))
		mux.Handle("POST /v1/deliveries/{id}/retry", handleRetryDelivery(n, cfg.Logger))
		mux.Handle("GET /unsubscribe/{token}", handleUnsubscribePage(n, cfg.Logger))
		mux.Handle("POST /unsubscribe/{token}", handleUnsubscribe(n, cfg.Logger))
	}
	mux.Handle("GET /v1/schemas", handleListSchemas(cfg.Schemas))
	mux.Handle("GET /v1/schemas/{type}/{version}", handleGetSchema(cfg.Schemas))

	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(cfg.Checks, cfg.Logger))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	mux.Handle("GET /openapi.json", handleOpenAPI())
}

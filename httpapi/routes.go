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
	mux.Handle("GET /v1/schemas", handleListSchemas(cfg.Schemas))
	mux.Handle("GET /v1/schemas/{type}/{version}", handleGetSchema(cfg.Schemas))

	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(cfg.Checks))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	mux.Handle("GET /openapi.json", handleOpenAPI())
}

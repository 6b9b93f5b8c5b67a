package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventflow/eventflow/apikey"
)

// addRoutes is the whole HTTP API. The /v1 routes need an API key with the
// scope named (see access.go); the others are open: the unsubscribe token
// is its own credential.
func addRoutes(mux *http.ServeMux, cfg Config) {
	key := access{keys: cfg.Keys, log: cfg.Logger}.require
	if cfg.Orders != nil {
		mux.Handle("POST /v1/orders", key(apikey.OrdersWrite, handleCreateOrder(cfg.Orders, cfg.Logger, cfg.MaxBodyBytes)))
		mux.Handle("GET /v1/orders", key(apikey.OrdersRead, handleListOrders(cfg.Orders, cfg.Logger)))
		mux.Handle("GET /v1/orders/{id}", key(apikey.OrdersRead, handleGetOrder(cfg.Orders, cfg.Logger)))
		mux.Handle("POST /v1/orders/{id}/status", key(apikey.OrdersWrite, handleChangeOrderStatus(cfg.Orders, cfg.Logger, cfg.MaxBodyBytes)))
	}
	if n := cfg.Notifications; n != nil {
		mux.Handle("POST /v1/subscriptions", key(apikey.SubscriptionsWrite, handleCreateSubscription(n, cfg.Logger, cfg.MaxBodyBytes)))
		mux.Handle("GET /v1/subscriptions", key(apikey.SubscriptionsRead, handleListSubscriptions(n, cfg.Logger)))
		mux.Handle("GET /v1/subscriptions/{id}", key(apikey.SubscriptionsRead, handleGetSubscription(n, cfg.Logger)))
		mux.Handle("PATCH /v1/subscriptions/{id}", key(apikey.SubscriptionsWrite, handleUpdateSubscription(n, cfg.Logger, cfg.MaxBodyBytes)))
		mux.Handle("DELETE /v1/subscriptions/{id}", key(apikey.SubscriptionsWrite, handleDeleteSubscription(n, cfg.Logger)))
		mux.Handle("GET /v1/deliveries", key(apikey.DeliveriesRead, handleListDeliveries(n, cfg.Logger)))
		mux.Handle("GET /v1/deliveries/{id}", key(apikey.DeliveriesRead, handleGetDelivery(n, cfg.Logger)))
		mux.Handle("POST /v1/deliveries/{id}/retry", key(apikey.DeliveriesWrite, handleRetryDelivery(n, cfg.Logger)))
		mux.Handle("GET /unsubscribe/{token}", handleUnsubscribePage(n, cfg.Logger))
		mux.Handle("POST /unsubscribe/{token}", handleUnsubscribe(n, cfg.Logger))
	}
	mux.Handle("GET /v1/schemas", handleListSchemas(cfg.Schemas))
	mux.Handle("GET /v1/schemas/{type}/{version}", handleGetSchema(cfg.Schemas))

	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(cfg.Checks, cfg.Logger))
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	mux.Handle("GET /openapi.json", handleOpenAPI())
	if cfg.Pprof {
		mux.Handle("GET /debug/pprof/", key(apikey.Admin, http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", key(apikey.Admin, http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/trace", key(apikey.Admin, http.HandlerFunc(pprof.Trace)))
	}
}

package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/eventflow/eventflow/orders"
)

func handleCreateOrder(svc OrderService, log *slog.Logger, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req orders.CreateRequest
		if !decodeOrAnswer(w, r, log, maxBody, &req) {
			return
		}
		res, err := svc.Create(r.Context(), callerOf(r), req, r.Header.Get("Idempotency-Key"), traceParent(r.Context()))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", "/v1/orders/"+res.Order.ID)
		encode(w, http.StatusCreated, res.Order)
	})
}

func handleGetOrder(svc OrderService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := svc.Order(r.Context(), callerOf(r), r.PathValue("id"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, o)
	})
}

func handleListOrders(svc OrderService, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, ok := queryLimit(w, r, log)
		if !ok {
			return
		}
		q := r.URL.Query()
		page, err := svc.List(r.Context(), callerOf(r), q.Get("user_id"), q.Get("cursor"), limit)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, page)
	})
}

func handleChangeOrderStatus(svc OrderService, log *slog.Logger, maxBody int64) http.Handler {
	type request struct {
		Status orders.Status `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if !decodeOrAnswer(w, r, log, maxBody, &req) {
			return
		}
		o, err := svc.ChangeStatus(r.Context(), callerOf(r), r.PathValue("id"), req.Status, traceParent(r.Context()))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, o)
	})
}

// decodeOrAnswer decodes the body into v, or answers with the problem and
// reports false.
func decodeOrAnswer(w http.ResponseWriter, r *http.Request, log *slog.Logger, maxBody int64, v any) bool {
	err := decode(r, maxBody, v)
	switch {
	case err == nil:
		return true
	case err == errTooLarge:
		writeStatusProblem(w, r, http.StatusRequestEntityTooLarge, "the request body is larger than "+strconv.FormatInt(maxBody, 10)+" bytes")
	case err == errMediaType:
		writeStatusProblem(w, r, http.StatusUnsupportedMediaType, err.Error())
	default:
		writeError(w, r, log, err)
	}
	return false
}

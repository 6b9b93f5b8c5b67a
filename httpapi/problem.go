package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/eventflow/eventflow"
)

// Problem is an RFC 9457 problem details object, the body of every error
// response.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request path the problem occurred at.
	Instance string `json:"instance,omitempty"`
	// Field is a JSON pointer into the request body (or the name of the
	// query parameter or header) that failed, when one did.
	Field string `json:"field,omitempty"`
}

// problemTypes maps error codes to a status, a type URI and a title. The
// URIs are identifiers, documented in the OpenAPI description.
var problemTypes = map[string]struct {
	status int
	uri    string
	title  string
}{
	eventflow.EINVALID:   {http.StatusBadRequest, "urn:eventflow:problem:invalid-request", "The request is invalid"},
	eventflow.ENOTFOUND:  {http.StatusNotFound, "urn:eventflow:problem:not-found", "Not found"},
	eventflow.ECONFLICT:  {http.StatusConflict, "urn:eventflow:problem:conflict", "The request conflicts with the current state"},
	eventflow.EFORBIDDEN: {http.StatusForbidden, "urn:eventflow:problem:forbidden", "Forbidden"},
	eventflow.EINTERNAL:  {http.StatusInternalServerError, "urn:eventflow:problem:internal", "Internal error"},
}

// writeError answers with the problem that err describes. Errors that are
// not an *eventflow.Error are internal: they are logged, and the caller sees
// no detail.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := eventflow.ErrorCode(err)
	pt := problemTypes[code]
	p := Problem{Type: pt.uri, Title: pt.title, Status: pt.status, Instance: r.URL.Path}
	var e *eventflow.Error
	if code != eventflow.EINTERNAL && errors.As(err, &e) {
		p.Detail, p.Field = e.Message, e.Field
	} else {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, p)
}

// writeStatusProblem answers with a problem for a status that no domain
// error stands behind (413, 415, 405 …).
func writeStatusProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	writeProblem(w, Problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	})
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

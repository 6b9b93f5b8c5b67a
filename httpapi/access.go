package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/apikey"
)

// openCaller is every request's caller when no API keys are configured:
// access control is off, and serve allows that only on loopback.
var openCaller = eventflow.Caller{Admin: true}

// access checks the API key of requests to the routes that need one.
type access struct {
	keys *apikey.Set // nil: access control is off
	log  *slog.Logger
}

// bearerToken is RFC 6750's b64token: what a Bearer credential may be.
var bearerToken = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// require lets a request through to next only with a valid API key that
// grants scope (401 or 403 otherwise), and puts its caller in the request's
// context. The key itself is never logged, nor repeated in an answer.
func (a access) require(scope apikey.Scope, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.keys == nil {
			next.ServeHTTP(w, r.WithContext(withCaller(r.Context(), openCaller)))
			return
		}
		key, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if !key.Has(scope) {
			a.log.InfoContext(r.Context(), "request refused: missing scope", "key", key.Name, "scope", scope, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventflow", error="insufficient_scope", scope="`+string(scope)+`"`)
			writeError(w, r, a.log, eventflow.Errorf(eventflow.EFORBIDDEN, "this API key lacks the %s scope", scope))
			return
		}
		next.ServeHTTP(w, r.WithContext(withCaller(r.Context(), key.Caller())))
	})
}

// authenticate returns the key the request presents, or answers 401.
func (a access) authenticate(w http.ResponseWriter, r *http.Request) (apikey.Key, bool) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		a.refuse(w, r, "no API key", "", "send an API key in the Authorization header: Bearer, a space, the key")
		return apikey.Key{}, false
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	switch {
	case !strings.EqualFold(scheme, "Bearer"):
		a.refuse(w, r, "not a Bearer credential", "", "send an API key in the Authorization header: Bearer, a space, the key")
		return apikey.Key{}, false
	case len(values) > 1 || !bearerToken.MatchString(token) || len(token) > apikey.MaxKeyLen:
		a.refuse(w, r, "malformed Bearer credential", "invalid_token", "send one Authorization header: Bearer, a space, the key")
		return apikey.Key{}, false
	}
	key, ok := a.keys.Verify(token)
	if !ok {
		a.refuse(w, r, "unknown API key", "invalid_token", "the API key is not valid")
		return apikey.Key{}, false
	}
	return key, true
}

// refuse answers 401 with RFC 6750's challenge. reason is for the log;
// detail, for the caller, never holds what the caller sent.
func (a access) refuse(w http.ResponseWriter, r *http.Request, reason, bearerError, detail string) {
	a.log.DebugContext(r.Context(), "request refused: "+reason, "method", r.Method, "path", r.URL.Path)
	challenge := `Bearer realm="eventflow"`
	if bearerError != "" {
		challenge += `, error="` + bearerError + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeProblem(w, Problem{
		Type:     "urn:eventflow:problem:unauthenticated",
		Title:    "A valid API key is needed",
		Status:   http.StatusUnauthorized,
		Detail:   detail,
		Instance: r.URL.Path,
		Field:    "Authorization",
	})
}

type callerKey struct{}

func withCaller(ctx context.Context, c eventflow.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf is the caller that require put in the request's context; the
// zero Caller, who may act for nobody, on a route that does not require a
// key.
func callerOf(r *http.Request) eventflow.Caller {
	c, _ := r.Context().Value(callerKey{}).(eventflow.Caller)
	return c
}

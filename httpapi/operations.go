package httpapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventflow/eventflow"
	"github.com/eventflow/eventflow/event"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz runs every check at once, each bounded in time, and is ready
// only when all pass.
func handleReadyz(checks []Check, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		results := make(map[string]string, len(checks))
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for _, c := range checks {
			wg.Go(func() {
				status := "ok"
				if err := c.Check(ctx); err != nil {
					status = err.Error()
				}
				mu.Lock()
				results[c.Name] = status
				mu.Unlock()
			})
		}
		wg.Wait()
		// The reasons go to the log, not to the caller: driver errors name
		// hosts, users and databases.
		var failed []string
		for name, status := range results {
			if status != "ok" {
				failed = append(failed, name)
				log.WarnContext(r.Context(), "not ready", "check", name, "err", status)
				results[name] = "failing"
			}
		}
		if len(failed) > 0 {
			sort.Strings(failed)
			writeStatusProblem(w, r, http.StatusServiceUnavailable, "not ready: "+strings.Join(failed, ", ")+" failing")
			return
		}
		encode(w, http.StatusOK, map[string]any{"status": "ready", "checks": results})
	})
}

func handleListSchemas(schemas *event.Schemas) http.Handler {
	type entry struct {
		Type    string `json:"type"`
		Version int    `json:"version"`
		Path    string `json:"path"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list := []entry{}
		for _, s := range schemas.List() {
			list = append(list, entry{Type: s.Type, Version: s.Version, Path: s.Path()})
		}
		encode(w, http.StatusOK, map[string]any{"schemas": list})
	})
}

func handleGetSchema(schemas *event.Schemas) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version, err := strconv.Atoi(strings.TrimPrefix(r.PathValue("version"), "v"))
		s, ok := schemas.Get(r.PathValue("type"), version)
		if err != nil || !ok || !strings.HasPrefix(r.PathValue("version"), "v") {
			writeError(w, r, nil, eventflow.Errorf(eventflow.ENOTFOUND, "no such event type and version; GET /v1/schemas lists them"))
			return
		}
		w.Header().Set("Content-Type", "application/schema+json")
		w.Write(s.Document)
	})
}

//go:embed openapi.json
var openAPI []byte

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
}

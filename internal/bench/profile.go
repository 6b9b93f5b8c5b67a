package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// startProfile, when the run profiles, takes a CPU profile of the eventflow
// process at baseURL over the next d (at most 20 s), and an allocation
// profile when the returned function is called at the end of the load. The
// process serves them because the harness starts it with EVENTFLOW_PPROF.
func startProfile(ctx context.Context, cfg *Config, baseURL, stage string, d time.Duration) (stop func()) {
	if cfg.Profile == "" {
		return func() {}
	}
	if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
		cfg.logf("profile: %v", err)
		return func() {}
	}
	prefix := filepath.Join(cfg.Profile, fmt.Sprintf("%s-%s", cfg.Stack, stage))
	// Under eventflow's default write timeout of 30 s.
	secs := int(min(max(d, time.Second), 20*time.Second) / time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetchProfile(ctx, cfg, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", baseURL, secs), prefix+".cpu.pprof")
	}()
	return func() {
		fetchProfile(ctx, cfg, baseURL+"/debug/pprof/allocs", prefix+".allocs.pprof")
		<-done
	}
}

func fetchProfile(ctx context.Context, cfg *Config, url, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		cfg.logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		cfg.logf("profile %s: %s (is EVENTFLOW_PPROF on?)", url, resp.Status)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		cfg.logf("profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		cfg.logf("profile %s: %v", url, err)
		return
	}
	cfg.logf("profile written: %s (go tool pprof -top %s)", path, path)
}

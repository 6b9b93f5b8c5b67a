package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eventflow/eventflow/internal/backoff"
)

// Proc is one incarnation of an eventflow process.
type Proc struct {
	// Name is the process's place in the cluster ("relay-1"); Instance is
	// this incarnation of it ("relay-1.i3").
	Name, Instance string
	Roles          string
	BaseURL        string
	Pid            int
	Started        time.Time

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill is a process ended by the driver.
type Kill struct {
	Instance string
	Pid      int
	Signal   string // "SIGKILL" or "SIGTERM"
	At       time.Time
}

// Cluster runs eventflow processes, one OS process per role set, and knows
// which incarnation of which process was ended when.
type Cluster struct {
	bin string
	env []string
	dir string
	own func(instance, roles string) []string
	log func(format string, args ...any)

	mu           sync.Mutex
	procs        map[string]*Proc
	incarnations map[string]int
	kills        []Kill
	all          []*Proc
	failedStarts int
}

// NewCluster returns a cluster that runs bin with env (KEY=VALUE), the
// roles, and own(instance, roles): the settings of one incarnation. Each
// process's log goes to dir/<name>.log.
func NewCluster(bin string, env []string, dir string, own func(instance, roles string) []string, logf func(string, ...any)) *Cluster {
	return &Cluster{bin: bin, env: env, dir: dir, own: own, log: logf,
		procs: map[string]*Proc{}, incarnations: map[string]int{}}
}

var listeningLine = regexp.MustCompile(`^eventflow listening on (http://\S+)`)

// Start starts a new incarnation of the process name with roles, and waits
// until it listens (at most a minute).
func (c *Cluster) Start(ctx context.Context, name, roles string) (*Proc, error) {
	c.mu.Lock()
	if p := c.procs[name]; p != nil && !p.Exited() {
		c.mu.Unlock()
		return nil, fmt.Errorf("start %s: already running as %s", name, p.Instance)
	}
	c.incarnations[name]++
	instance := fmt.Sprintf("%s.i%d", name, c.incarnations[name])
	c.mu.Unlock()

	logFile, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "===== %s start %s (%s)\n", time.Now().Format(time.RFC3339Nano), instance, roles)
	cmd := exec.Command(c.bin, "serve")
	cmd.Env = append(append([]string{}, c.env...), "EVENTFLOW_ROLES="+roles)
	cmd.Env = append(cmd.Env, c.own(instance, roles)...)
	cmd.Stderr = logFile
	// The processes die with the driver, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", instance, err)
	}
	p := &Proc{Name: name, Instance: instance, Roles: roles, Pid: cmd.Process.Pid, Started: time.Now(), cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(stdout)
	first := make(chan string, 1)
	go func() {
		if lines.Scan() {
			first <- lines.Text()
		}
		close(first)
		for lines.Scan() {
		}
		p.err = cmd.Wait()
		fmt.Fprintf(logFile, "===== %s exit %s: %v\n", time.Now().Format(time.RFC3339Nano), instance, p.err)
		logFile.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.all = append(c.all, p)
	c.mu.Unlock()

	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case line, ok := <-first:
		m := listeningLine.FindStringSubmatch(line)
		if !ok || m == nil {
			<-p.done
			c.mu.Lock()
			c.failedStarts++
			c.mu.Unlock()
			return nil, fmt.Errorf("start %s: %w (%v); see %s", instance, errNotListening, p.err, filepath.Join(c.dir, name+".log"))
		}
		p.BaseURL = m[1]
	case <-timer.C:
		c.signal(p, syscall.SIGKILL)
		return nil, fmt.Errorf("start %s: not listening after a minute", instance)
	case <-ctx.Done():
		c.signal(p, syscall.SIGKILL)
		return nil, ctx.Err()
	}
	c.log("started %s (pid %d, %s)", instance, p.Pid, roles)
	return p, nil
}

var errNotListening = errors.New("it exited before listening")

// StartRetry starts name as a supervisor (systemd, Kubernetes) would: a
// process that exits at start, because the broker or the database it needs
// is down, is started again every two seconds, for at most within.
func (c *Cluster) StartRetry(ctx context.Context, name, roles string, within time.Duration) (*Proc, error) {
	deadline := time.Now().Add(within)
	for {
		p, err := c.Start(ctx, name, roles)
		if err == nil || !errors.Is(err, errNotListening) || time.Now().After(deadline) {
			return p, err
		}
		if !backoff.Sleep(ctx, 2*time.Second) {
			return nil, ctx.Err()
		}
	}
}

// FailedStarts counts the incarnations that exited before they listened.
func (c *Cluster) FailedStarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failedStarts
}

// Get returns the current incarnation of name, nil if none was started.
func (c *Cluster) Get(name string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// ByPid returns the running process with that pid.
func (c *Cluster) ByPid(pid int) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.Pid == pid && !p.Exited() {
			return p
		}
	}
	return nil
}

// Running returns the running processes whose name starts with prefix,
// sorted by name.
func (c *Cluster) Running(prefix string) []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Proc
	for name, p := range c.procs {
		if strings.HasPrefix(name, prefix) && !p.Exited() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Kill ends the current incarnation of name with SIGKILL: no shutdown, no
// flush, no commit, no lease release. It waits until the process is gone.
func (c *Cluster) Kill(name string) (*Proc, error) {
	p := c.Get(name)
	if p == nil || p.Exited() {
		return nil, fmt.Errorf("kill %s: not running", name)
	}
	c.signal(p, syscall.SIGKILL)
	return p, nil
}

// Stop ends the current incarnation of name with SIGTERM, its graceful
// shutdown, and waits for it (SIGKILL after 30 s).
func (c *Cluster) Stop(name string) error {
	p := c.Get(name)
	if p == nil || p.Exited() {
		return nil
	}
	c.signal(p, syscall.SIGTERM)
	return nil
}

func (c *Cluster) signal(p *Proc, sig syscall.Signal) {
	name := "SIGKILL"
	if sig == syscall.SIGTERM {
		name = "SIGTERM"
	}
	c.mu.Lock()
	c.kills = append(c.kills, Kill{Instance: p.Instance, Pid: p.Pid, Signal: name, At: time.Now()})
	c.mu.Unlock()
	p.cmd.Process.Signal(sig)
	wait := 30 * time.Second
	if sig == syscall.SIGKILL {
		wait = 10 * time.Second
	}
	select {
	case <-p.done:
	case <-time.After(wait):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	if sig == syscall.SIGTERM && p.err != nil {
		c.log("%s exited after SIGTERM with %v", p.Instance, p.err)
	}
}

// Kills returns every process ended by the driver, in order.
func (c *Cluster) Kills() []Kill {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Kill(nil), c.kills...)
}

// Unexpected returns the incarnations that were running and exited without
// the driver ending them: crashes. (Those that exited at start are
// FailedStarts.)
func (c *Cluster) Unexpected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ended := map[string]bool{}
	for _, k := range c.kills {
		ended[k.Instance] = true
	}
	var out []string
	for _, p := range c.all {
		if p.Exited() && !ended[p.Instance] && p.BaseURL != "" {
			out = append(out, fmt.Sprintf("%s (%v)", p.Instance, p.err))
		}
	}
	return out
}

// StopAll ends every process gracefully, all at once.
func (c *Cluster) StopAll() {
	c.mu.Lock()
	var running []*Proc
	for _, p := range c.procs {
		if !p.Exited() {
			running = append(running, p)
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range running {
		wg.Go(func() { c.signal(p, syscall.SIGTERM) })
	}
	wg.Wait()
}

// Logs returns the log file of every process name seen, by name.
func (c *Cluster) Logs() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for name := range c.procs {
		out[name] = filepath.Join(c.dir, name+".log")
	}
	return out
}

// scanLogs calls fn with each JSON log line of every process.
func (c *Cluster) scanLogs(fn func(line []byte)) error {
	var errs []error
	for _, path := range c.Logs() {
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r := bufio.NewReaderSize(f, 1<<16)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && line[0] == '{' {
				fn(line)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errs = append(errs, err)
				}
				break
			}
		}
		f.Close()
	}
	return errors.Join(errs...)
}

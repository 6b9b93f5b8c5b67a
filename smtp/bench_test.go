package smtp_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventflow/eventflow/event"
	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// benchEmail is a notification as notifications.Renderer makes it for an
// order with a few items: about 2.4 KB of text and HTML, a UTF-8 subject
// line and the List-Unsubscribe and X-Eventflow headers.
func benchEmail(b *testing.B) notifications.Email {
	b.Helper()
	r, err := notifications.NewRenderer("Eventflow <notify@shop.example>", "https://shop.example",
		notifications.NewTokens([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{
		"id": "0192f5a0-7c1e-7d3a-9b2f-3c4d5e6f7a8b", "user_id": "u-1", "status": "shipped",
		"previous_status": "paid", "total": 15870, "currency": "EUR",
		"comment": "Bitte an der Hintertür abgeben – danke!",
		"items": []map[string]any{
			{"sku": "TEA-1", "name": "Earl Grey 250 g", "quantity": 2, "unit_price": 1290},
			{"sku": "MUG-3", "name": "Tasse « Café » blau", "quantity": 4, "unit_price": 1500},
			{"sku": "KET-2", "name": "Wasserkocher 1,7 l", "quantity": 1, "unit_price": 6990},
			{"sku": "BIS-9", "name": "Shortbread & Co.", "quantity": 3, "unit_price": 1030},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	m, err := r.Email(notifications.Job{
		Delivery: notifications.Delivery{ID: "0192f5a0-8d2f-7e4b-8c30-4d5e6f7a8b9c",
			Address: "alice.example@example.com", Channel: notifications.ChannelEmail},
		Event: event.Event{ID: "0192f5a0-7c1e-7d3a-9b2f-000000000001", Type: "orders.order.status_changed",
			Data: data, Time: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)},
		Subscription: notifications.Subscription{ID: "0192f5a0-6b0d-7c29-8a1e-2b3c4d5e6f70"},
	})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// startBenchSink runs an SMTP server on 127.0.0.1 that accepts every
// message and keeps nothing, so that the benchmark measures the client
// rather than a server that stores what it receives. It returns the URL.
func startBenchSink(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveBenchSink(c) })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "smtp://" + ln.Addr().String()
}

func serveBenchSink(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	reply := func(s string) bool {
		_, err := io.WriteString(c, s)
		return err == nil
	}
	if !reply("220 sink.test ESMTP\r\n") {
		return
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		var ok bool
		switch strings.ToUpper(verb) {
		case "EHLO":
			ok = reply("250-sink.test\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
		case "DATA":
			if !reply("354 go ahead\r\n") {
				return
			}
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				if bytes.Equal(line, []byte(".\r\n")) {
					break
				}
			}
			ok = reply("250 2.0.0 queued\r\n")
		case "QUIT":
			reply("221 2.0.0 bye\r\n")
			return
		default:
			ok = reply("250 2.0.0 ok\r\n")
		}
		if !ok {
			return
		}
	}
}

// reportCPU starts counting the process's CPU time (the sink's included)
// and returns the function that reports it per operation: cpu-ns/op in
// all, user-ns/op of it outside the kernel. On a shared machine the wall
// time of a send is mostly waiting for the loopback round trips and for
// the scheduler, and the kernel's share is mostly those round trips, so
// user-ns/op is the steadiest measure of building and writing a message.
func reportCPU(b *testing.B) func() {
	user, sys := processCPU(b)
	return func() {
		u, s := processCPU(b)
		n := float64(b.N)
		b.ReportMetric(float64(u-user+s-sys)/n, "cpu-ns/op")
		b.ReportMetric(float64(u-user)/n, "user-ns/op")
	}
}

func processCPU(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkSend is the CPU per email of the SMTP path: building the MIME
// message and sending it on a pooled connection to a local server.
func BenchmarkSend(b *testing.B) {
	m := benchEmail(b)
	s, err := smtp.New(smtp.Config{URL: startBenchSink(b), PoolSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.SendEmail(b.Context(), m); err != nil { // connect outside the loop
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if err := s.SendEmail(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendParallel sends from several goroutines over a pool of
// connections, as the delivery workers do.
func BenchmarkSendParallel(b *testing.B) {
	m := benchEmail(b)
	s, err := smtp.New(smtp.Config{URL: startBenchSink(b), PoolSize: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	b.ReportAllocs()
	b.SetParallelism(2) // with GOMAXPROCS 2, four workers as in the pool
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.SendEmail(b.Context(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBuildMessage is the CPU of turning an email into the bytes that
// go to the server (or into a maildir file), without any I/O.
func BenchmarkBuildMessage(b *testing.B) {
	m := benchEmail(b)
	b.SetBytes(int64(len(m.Text) + len(m.HTML)))
	b.ReportAllocs()
	for b.Loop() {
		msg, err := smtp.BuildMessage(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := msg.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

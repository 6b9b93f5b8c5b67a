package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// NewClient returns a franz-go client for brokers with opts added, for admin
// work (wrap it with kadm.NewClient) and for tests. It does not connect
// until first used.
func NewClient(brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("new kafka client: no brokers")
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	client, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("new kafka client: %w", err)
	}
	return client, nil
}

// Ping checks that one of the client's brokers answers a metadata request.
// It is what readiness probes call: a process that cannot reach any broker
// should not get traffic.
func Ping(ctx context.Context, client *kgo.Client) error {
	if err := client.Ping(ctx); err != nil {
		return fmt.Errorf("ping kafka: %w", err)
	}
	return nil
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// maxTopicNameLen is Kafka's limit on topic names: a partition's folder is
// named "<topic>-<partition>" and must fit in 255 bytes.
const maxTopicNameLen = 249

// Topic config keys ApplyTopics manages.
const (
	configMinInsyncReplicas = "min.insync.replicas"
	configRetentionMs       = "retention.ms"
	configCleanupPolicy     = "cleanup.policy"
)

// TopicSpec declares a topic as eventflow wants it.
type TopicSpec struct {
	// Name must pass ValidTopicName.
	Name string
	// Partitions caps how many consumers of one group share the topic's
	// load. It can grow later, but growing it moves keys to other partitions,
	// so choose it for the expected peak. At least 1.
	Partitions int32
	// ReplicationFactor is how many brokers keep a copy of each partition;
	// 0 leaves it to the broker's default.replication.factor.
	ReplicationFactor int16
	// MinInsyncReplicas is how many copies must have a record before an
	// acks=all produce succeeds: with 3 replicas, 2 survives one broker down
	// without losing acknowledged records. 0 leaves the broker's default.
	MinInsyncReplicas int
	// Retention is how long records are kept: 0 leaves the broker's default,
	// a negative value keeps them forever.
	Retention time.Duration
}

// TopicResult says what ApplyTopics did to one topic.
type TopicResult struct {
	Name string
	// Created is true when the topic did not exist before.
	Created bool
	// Partitions is the topic's partition count afterwards.
	Partitions int32
	// PartitionsAdded is how many partitions ApplyTopics added to an existing
	// topic whose spec asked for more.
	PartitionsAdded int32
	// Altered lists the configs changed on an existing topic, as
	// "key: old -> new".
	Altered []string
	// Mismatches lists differences ApplyTopics leaves alone and an operator
	// should look at: more partitions than the spec (partitions cannot be
	// removed) or another replication factor (changing it means moving
	// replicas, which is a deliberate operation of its own).
	Mismatches []string
}

// TopicInfo describes an existing topic.
type TopicInfo struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	MinInsyncReplicas int
	// Retention is negative when records are kept forever.
	Retention     time.Duration
	CleanupPolicy string
}

// ValidTopicName reports why name breaks eventflow's topic naming rule, or
// nil if it follows it. The rule is the seed's <domain>.<entity>.<kind>:
// at least three segments separated by dots, each a lower-case letter
// followed by lower-case letters, digits or dashes, in all at most 249
// characters (Kafka's own limit).
//
// It is stricter than Kafka on purpose. Kafka maps '.' and '_' to the same
// metric name, so two topics differing only there collide in monitoring:
// allowing dots only rules that out. Lower case only means two names never
// differ by case alone, which some filesystems and tools cannot tell apart.
// A leading letter rules out Kafka's internal topics ("__consumer_offsets").
func ValidTopicName(name string) error {
	if name == "" {
		return errors.New("topic name is empty")
	}
	if len(name) > maxTopicNameLen {
		return fmt.Errorf("topic name %.20q... is %d characters long, at most %d allowed", name, len(name), maxTopicNameLen)
	}
	segments := strings.Split(name, ".")
	if len(segments) < 3 {
		return fmt.Errorf("topic name %q has %d dot-separated segments, want at least 3: <domain>.<entity>.<kind>", name, len(segments))
	}
	for i, s := range segments {
		if s == "" {
			return fmt.Errorf("topic name %q: segment %d is empty", name, i+1)
		}
		if s[0] < 'a' || s[0] > 'z' {
			return fmt.Errorf("topic name %q: segment %q must start with a lower-case letter", name, s)
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("topic name %q: segment %q may hold only a-z, 0-9 and '-'", name, s)
			}
		}
	}
	return nil
}

func (s TopicSpec) validate() error {
	if err := ValidTopicName(s.Name); err != nil {
		return err
	}
	if s.Partitions < 1 {
		return fmt.Errorf("topic %s: partitions %d, want at least 1", s.Name, s.Partitions)
	}
	if s.ReplicationFactor < 0 {
		return fmt.Errorf("topic %s: replication factor %d, want at least 1 (0 for the broker default)", s.Name, s.ReplicationFactor)
	}
	if s.MinInsyncReplicas < 0 {
		return fmt.Errorf("topic %s: min.insync.replicas %d is negative", s.Name, s.MinInsyncReplicas)
	}
	if s.ReplicationFactor > 0 && s.MinInsyncReplicas > int(s.ReplicationFactor) {
		// acks=all produces could never succeed.
		return fmt.Errorf("topic %s: min.insync.replicas %d exceeds replication factor %d", s.Name, s.MinInsyncReplicas, s.ReplicationFactor)
	}
	return nil
}

// configs returns the topic configs the spec pins, as Kafka spells them.
func (s TopicSpec) configs() map[string]string {
	c := make(map[string]string, 2)
	if s.MinInsyncReplicas > 0 {
		c[configMinInsyncReplicas] = strconv.Itoa(s.MinInsyncReplicas)
	}
	switch {
	case s.Retention < 0:
		c[configRetentionMs] = "-1"
	case s.Retention > 0:
		c[configRetentionMs] = strconv.FormatInt(s.Retention.Milliseconds(), 10)
	}
	return c
}

// ApplyTopics makes the cluster's topics match specs, and is safe to run on
// every start and from several processes at once: it creates missing topics
// with their configs; on existing ones it sets min.insync.replicas and
// retention.ms where they differ, and adds partitions where the spec has
// more. It never removes partitions or changes a replication factor; those
// differences are reported in the result's Mismatches.
//
// Specs are checked before anything is changed. A failure on one topic does
// not stop the others: the error joins every topic's failure, and the
// results cover the topics that were applied.
func ApplyTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) ([]TopicResult, error) {
	seen := make(map[string]bool, len(specs))
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("apply topics: %w", err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("apply topics: topic %s declared twice", s.Name)
		}
		seen[s.Name] = true
		names = append(names, s.Name)
	}
	if len(specs) == 0 {
		return nil, nil
	}

	details, err := adm.ListTopics(fresh(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("apply topics: list topics: %w", err)
	}

	var (
		results []TopicResult
		errs    []error
	)
	for _, s := range specs {
		r, err := applyTopic(ctx, adm, s, details[s.Name])
		if err == nil && (r.Created || r.PartitionsAdded > 0 || len(r.Altered) > 0) {
			err = waitApplied(ctx, adm, s.Name, r.Partitions, s.configs())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", s.Name, err))
			continue
		}
		results = append(results, r)
	}
	if err := errors.Join(errs...); err != nil {
		return results, fmt.Errorf("apply topics: %w", err)
	}
	return results, nil
}

// topicPollInterval is how often waitApplied looks again, and
// applyWaitTimeout how long it looks: Kafka applies a change within
// well under a second, so a change still not visible after this never will be.
const (
	topicPollInterval = 50 * time.Millisecond
	applyWaitTimeout  = 30 * time.Second
)

// waitApplied waits until the topic has the partitions and configs it was
// just given, each partition answering a ListOffsets request, which only its
// leader does. Kafka acknowledges such changes before its brokers apply them:
// a new topic is even listed as unknown for a moment, a produce to it fails
// and waits for fresh metadata, and a describe shows the old configs. After
// the wait, the topic is usable and a second ApplyTopics finds nothing to do.
func waitApplied(ctx context.Context, adm *kadm.Client, name string, partitions int32, configs map[string]string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, applyWaitTimeout,
		fmt.Errorf("changes not visible after %v", applyWaitTimeout))
	defer cancel()
	for {
		ready, err := isApplied(ctx, adm, name, partitions, configs)
		if err != nil || ready {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the changes to apply: %w", context.Cause(ctx))
		case <-time.After(topicPollInterval):
		}
	}
}

func isApplied(ctx context.Context, adm *kadm.Client, name string, partitions int32, configs map[string]string) (bool, error) {
	offsets, err := adm.ListEndOffsets(fresh(ctx), name)
	if err != nil {
		return false, fmt.Errorf("list offsets: %w", err)
	}
	if len(offsets[name]) != int(partitions) {
		return false, nil
	}
	for _, o := range offsets[name] {
		if o.Err != nil {
			return false, nil
		}
	}
	have, err := topicConfigs(ctx, adm, name)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return false, nil // this broker has not heard of the topic yet
	}
	if err != nil {
		return false, err
	}
	for key, value := range configs {
		if !sameConfigValue(have[key], value) {
			return false, nil
		}
	}
	return true, nil
}

func applyTopic(ctx context.Context, adm *kadm.Client, s TopicSpec, d kadm.TopicDetail) (TopicResult, error) {
	r := TopicResult{Name: s.Name}
	if errors.Is(d.Err, kerr.UnknownTopicOrPartition) || d.Topic == "" {
		created, err := createTopic(ctx, adm, s)
		if err != nil {
			return r, err
		}
		if created {
			r.Created = true
			r.Partitions = s.Partitions
			return r, nil
		}
		// Someone else created it since we looked: reconcile what they made.
		if d, err = describeTopic(ctx, adm, s.Name); err != nil {
			return r, err
		}
	}
	if d.Err != nil {
		return r, fmt.Errorf("describe: %w", d.Err)
	}

	r.Partitions = int32(len(d.Partitions))
	switch {
	case r.Partitions < s.Partitions:
		resp, err := adm.UpdatePartitions(ctx, int(s.Partitions), s.Name)
		if err == nil {
			var pr kadm.CreatePartitionsResponse
			if pr, err = resp.On(s.Name, nil); err == nil {
				err = pr.Err
			}
		}
		if err != nil {
			return r, fmt.Errorf("add partitions %d -> %d: %w", r.Partitions, s.Partitions, err)
		}
		r.PartitionsAdded = s.Partitions - r.Partitions
		r.Partitions = s.Partitions
	case r.Partitions > s.Partitions:
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("has %d partitions, spec wants %d; partitions are never removed", r.Partitions, s.Partitions))
	}
	if rf := int16(d.Partitions.NumReplicas()); s.ReplicationFactor > 0 && rf != s.ReplicationFactor {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("has replication factor %d, spec wants %d; reassign replicas to change it", rf, s.ReplicationFactor))
	}

	want := s.configs()
	if len(want) == 0 {
		return r, nil
	}
	have, err := topicConfigs(ctx, adm, s.Name)
	if err != nil {
		return r, err
	}
	var alter []kadm.AlterConfig
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if sameConfigValue(have[key], want[key]) {
			continue
		}
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: key, Value: kadm.StringPtr(want[key])})
		r.Altered = append(r.Altered, fmt.Sprintf("%s: %s -> %s", key, have[key], want[key]))
	}
	if len(alter) == 0 {
		return r, nil
	}
	resp, err := adm.AlterTopicConfigs(ctx, alter, s.Name)
	if err == nil {
		var ar kadm.AlterConfigsResponse
		if ar, err = resp.On(s.Name, nil); err == nil {
			err = ar.Err
		}
	}
	if err != nil {
		return r, fmt.Errorf("alter configs: %w", err)
	}
	return r, nil
}

// createTopic creates the topic, reporting false if it exists already.
func createTopic(ctx context.Context, adm *kadm.Client, s TopicSpec) (bool, error) {
	configs := make(map[string]*string)
	for k, v := range s.configs() {
		configs[k] = kadm.StringPtr(v)
	}
	rf := s.ReplicationFactor
	if rf == 0 {
		rf = -1 // the broker's default.replication.factor
	}
	_, err := adm.CreateTopic(ctx, s.Partitions, rf, configs, s.Name)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create: %w", err)
	}
	return true, nil
}

func describeTopic(ctx context.Context, adm *kadm.Client, name string) (kadm.TopicDetail, error) {
	details, err := adm.ListTopics(fresh(ctx), name)
	if err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("describe: %w", err)
	}
	return details[name], nil
}

// fresh makes kadm's metadata calls under ctx ask the broker rather than
// answer from the client's cache, which keeps results (a topic being
// unknown, too) for up to 5 seconds: stale answers would make ApplyTopics
// recreate or wait on topics for nothing. kadm bypasses its cache only when
// asked for authorized operations, so we ask for those.
func fresh(ctx context.Context) context.Context { return kadm.WithAuthorizedOps(ctx) }

// topicConfigs returns the topic's effective config values, defaults
// included.
func topicConfigs(ctx context.Context, adm *kadm.Client, name string) (map[string]string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	rc, err := rcs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	m := make(map[string]string, len(rc.Configs))
	for _, c := range rc.Configs {
		m[c.Key] = c.MaybeValue()
	}
	return m, nil
}

// sameConfigValue compares config values as numbers when both are, so that
// "604800000" and "6.048E8" or "01" and "1" are not taken for a change.
func sameConfigValue(a, b string) bool {
	if a == b {
		return true
	}
	x, errX := strconv.ParseFloat(a, 64)
	y, errY := strconv.ParseFloat(b, 64)
	return errX == nil && errY == nil && x == y
}

// ListTopics describes the cluster's topics, sorted by name, leaving out
// Kafka's internal ones (their names start with "__").
func ListTopics(ctx context.Context, adm *kadm.Client) ([]TopicInfo, error) {
	details, err := adm.ListTopics(fresh(ctx))
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var names []string
	for _, d := range details.Sorted() {
		if d.IsInternal || strings.HasPrefix(d.Topic, "__") {
			continue
		}
		if errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			continue // being created or deleted right now
		}
		if d.Err != nil {
			return nil, fmt.Errorf("list topics: topic %s: %w", d.Topic, d.Err)
		}
		names = append(names, d.Topic)
	}
	if len(names) == 0 {
		return nil, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: describe configs: %w", err)
	}
	infos := make([]TopicInfo, 0, len(names))
	for _, name := range names {
		d := details[name]
		info := TopicInfo{
			Name:              name,
			Partitions:        int32(len(d.Partitions)),
			ReplicationFactor: int16(d.Partitions.NumReplicas()),
		}
		rc, err := rcs.On(name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return nil, fmt.Errorf("list topics: topic %s: describe configs: %w", name, err)
		}
		for _, c := range rc.Configs {
			v := c.MaybeValue()
			switch c.Key {
			case configMinInsyncReplicas:
				info.MinInsyncReplicas, _ = strconv.Atoi(v)
			case configRetentionMs:
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
					info.Retention = time.Duration(ms) * time.Millisecond
					if ms < 0 {
						info.Retention = -1
					}
				}
			case configCleanupPolicy:
				info.CleanupPolicy = v
			}
		}
		infos = append(infos, info)
	}
	return infos, nil
}

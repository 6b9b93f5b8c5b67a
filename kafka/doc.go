// Package kafka is eventflow's only Kafka-aware code. It publishes events as
// CloudEvents 1.0 records in Kafka's binary mode (Publisher, EncodeRecord),
// decodes them again (DecodeRecord), keeps topics as declared (ApplyTopics)
// and runs the in-process broker of the embedded defaults (StartEmbedded).
//
// The rest of eventflow sees only its own interfaces, such as
// outbox.Publisher; franz-go types stay in here and in the tests.
package kafka

# eventflow
#   make run            run eventflow with its embedded defaults
#   make test           full test tier: real PostgreSQL, Kafka, Mailpit (scripts/test.sh)
#   make test-quick     unit/embedded tests only, no external services
#   make fuzz           every fuzz target for FUZZTIME each (default 10s; scripts/fuzz.sh)
#   make services-up    start the test services (scripts/services.sh start)
#   make services-down  stop them
#   make chaos          fault-injection suite: each fault alone, mixed, and the guarantee table (scripts/chaos.sh full)
#   make chaos-short    every fault once in one run, as CI runs it (scripts/chaos.sh short)
#   make chaos-table    the delivery-guarantee table (scripts/chaos.sh table)
#   make bench          every benchmark stage with its same-run baseline, real stack then embedded (scripts/bench.sh)
#   make bench-soak     ten minutes at half the measured maximum, watching memory, goroutines and files

.PHONY: run test test-quick fuzz services-up services-down services-status chaos chaos-short chaos-table bench bench-soak

run:
	go run ./cmd/eventflow

test:
	scripts/test.sh

test-quick:
	go test ./...

fuzz:
	scripts/fuzz.sh

services-up:
	scripts/install-deps.sh
	scripts/services.sh start
	@echo "# to use them: eval \"\$$(scripts/services.sh env)\""

services-down:
	scripts/services.sh stop

services-status:
	scripts/services.sh status

chaos:
	scripts/chaos.sh full

chaos-short:
	scripts/chaos.sh short

chaos-table:
	scripts/chaos.sh table

bench:
	scripts/bench.sh

bench-soak:
	STACKS=real STAGES=soak scripts/bench.sh

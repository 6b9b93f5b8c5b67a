# eventflow
#   make run            run eventflow with its embedded defaults
#   make test           full test tier: real PostgreSQL, Kafka, Mailpit (scripts/test.sh)
#   make test-quick     unit/embedded tests only, no external services
#   make services-up    start the test services (scripts/services.sh start)
#   make services-down  stop them

.PHONY: run test test-quick services-up services-down services-status

run:
	go run ./cmd/eventflow

test:
	scripts/test.sh

test-quick:
	go test ./...

services-up:
	scripts/install-deps.sh
	scripts/services.sh start
	@echo "# to use them: eval \"\$$(scripts/services.sh env)\""

services-down:
	scripts/services.sh stop

services-status:
	scripts/services.sh status

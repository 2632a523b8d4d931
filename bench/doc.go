// Package bench is make bench: the worker's throughput against the storage floor, storage
// requests per effect, CPU against Azurite's, and memory, for two scenarios (history and
// notify); and automations: 100 rules on the events' type, against a history-only phase on
// the same events (decision transactions per event, worker CPU per (rule, event)). It is a
// test built only with -tags bench, run against a worker process (the chaos build, which can
// report its storage request counts):
//
//	make bench
//	go test -tags bench ./bench -run TestBench -v -args -scenario=notify -notify=500
package bench

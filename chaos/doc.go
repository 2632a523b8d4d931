// Package chaos is the crash, race and fault harness (make chaos): real worker processes
// (bin/platform-chaos, the chaos build), killed with SIGKILL at random moments and restarted,
// under a mixed load delivered at least once, with automation rules firing and agent runs
// executing, with storage faults injected on request; then it drains and checks, from storage
// and from what the SMTP server, the webhook receiver and the harness's HTTP agent actually
// received, that nothing was lost and nothing duplicated, and that no run was executed by two
// replicas at once within its lease.
//
// The harness is a test built only with -tags chaos:
//
//	make chaos                                   # the default run, then again with 10 % faults
//	go test -tags chaos ./chaos -run TestChaos -v -args -events=600 -kills=20 -faults=0.1
package chaos

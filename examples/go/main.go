// tollgate from Go with go-redis: a decision, a pipeline and a WAIT.
//
//	REDIS_URL=redis://127.0.0.1:6379 go run main.go
//
// Built against Debian's go-redis (package golang-gopkg-redis.v5-dev, import
// path gopkg.in/redis.v5) in GOPATH mode, so it needs no module proxy. With
// go-redis v9 (github.com/redis/go-redis/v9) a check is
// rdb.Do(ctx, "LIMIT.CHECK", key, "token_bucket", 10, "1s").Int64Slice(),
// and pipelines work the same way. Exits 1 if the server answers anything
// but what the protocol promises.
package main

import (
	"fmt"
	"os"
	"time"

	redis "gopkg.in/redis.v5"
)

// check runs LIMIT.CHECK and answers the five integers of the decision.
func check(c *redis.Client, args ...interface{}) []int64 {
	cmd := redis.NewSliceCmd(append([]interface{}{"LIMIT.CHECK"}, args...)...)
	if err := c.Process(cmd); err != nil {
		fail("LIMIT.CHECK", err)
	}
	return ints(cmd)
}

func ints(cmd *redis.SliceCmd) []int64 {
	vals, err := cmd.Result()
	if err != nil {
		fail("reply", err)
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		out[i] = v.(int64)
	}
	return out
}

func fail(what string, got interface{}) {
	fmt.Printf("FAIL %s: %v\n", what, got)
	os.Exit(1)
}

func expect(what string, ok bool, got interface{}) {
	if !ok {
		fail(what, got)
	}
	fmt.Printf("ok   %s: %v\n", what, got)
}

func main() {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		fail("REDIS_URL", err)
	}
	// WAIT holds the reply: read timeouts must outlast the longest WAIT.
	opt.ReadTimeout = 10 * time.Second
	c := redis.NewClient(opt)
	defer c.Close()
	run := fmt.Sprintf("go-%d", os.Getpid())

	// One decision: [allowed, limit, remaining, retry_after_ms, reset_after_ms].
	d := check(c, run+":user", "token_bucket", 10, "1s")
	expect("a decision", len(d) == 5 && d[0] == 1 && d[1] == 10 && d[2] == 9 && d[3] == -1, d)

	// A pipeline of 12 checks against a limit of 10.
	pipe := c.Pipeline()
	cmds := make([]*redis.SliceCmd, 12)
	for i := range cmds {
		cmds[i] = redis.NewSliceCmd("LIMIT.CHECK", run+":burst", "fixed_window", 10, "1m")
		pipe.Process(cmds[i])
	}
	if _, err := pipe.Exec(); err != nil {
		fail("pipeline", err)
	}
	allowed := 0
	results := make([]int64, len(cmds))
	for i, cmd := range cmds {
		r := ints(cmd)
		results[i] = r[0]
		if r[0] == 1 {
			allowed++
		}
	}
	last := ints(cmds[11])
	expect("a pipeline", allowed == 10 && last[0] == 0 && last[3] > 0, results)

	// WAIT: the second unit of a 1-per-second GCRA is held about a second.
	check(c, run+":job", "gcra", 1, "1s")
	started := time.Now()
	w := check(c, run+":job", "gcra", 1, "1s", "WAIT", "5s")
	waited := time.Since(started)
	expect("a WAIT", w[0] == 1 && waited >= 800*time.Millisecond, fmt.Sprintf("%v after %v", w, waited.Round(time.Millisecond)))
}

-- A token bucket in Redis Lua, the kind people hand-write: the reference
-- that bench/compare.sh runs with EVALSHA against CL.THROTTLE.
-- KEYS[1] key; ARGV: burst, count per period, period in seconds.
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / (tonumber(ARGV[3]) * 1000)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return {allowed, math.floor(tokens)}

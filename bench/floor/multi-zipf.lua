-- The spread floor with skewed demand: ../shared/design/floor/multi.lua run unchanged, but each
-- claim's campaign is drawn Zipf(ZIPF) over 1..C (campaign k with weight k^-ZIPF, the same
-- draw as bench's loadgen --distribution zipf) instead of uniformly.
--
-- multi.lua draws a claim's campaign with math.random(1, C) and calls math.random nowhere
-- else, so this wraps math.random: a call with (1, C) answers a Zipf draw, any other call is
-- passed through. Then it loads multi.lua itself from MULTI_LUA (its path), so the transaction
-- is the shared one to the letter.
--
--   ZIPF=1.1 C=1000 UNION=1 BATCH=64 MULTI_LUA=../shared/design/floor/multi.lua \
--     sysbench --db-driver=mysql ... bench/floor/multi-zipf.lua run
local S = tonumber(os.getenv("ZIPF") or "1.1")
local C = tonumber(os.getenv("C") or "200")
local path = os.getenv("MULTI_LUA") or error("set MULTI_LUA to the path of the shared multi.lua")

local cumulative, sum = {}, 0
for k = 1, C do
  sum = sum + k ^ -S
  cumulative[k] = sum
end
for k = 1, C do cumulative[k] = cumulative[k] / sum end

local uniform = math.random
math.random = function(...)
  local a, b = ...
  if select("#", ...) == 2 and a == 1 and b == C then
    local u = uniform()
    local lo, hi = 1, C
    while lo < hi do -- the first rank whose cumulative weight exceeds u
      local mid = math.floor((lo + hi) / 2)
      if cumulative[mid] <= u then lo = mid + 1 else hi = mid end
    end
    return lo
  end
  return uniform(...)
end

dofile(path)

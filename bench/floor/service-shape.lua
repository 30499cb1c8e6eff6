-- The service's claim transaction, and the floor's, on the service's own schema (a database
-- `giftcodes migrate` made), so bench/shapes.sh can price their parts in mariadbd CPU a claim.
-- BATCH claims a transaction, each for a new user of a campaign drawn uniformly from 1..C
-- (campaign k's id is UNHEX(MD5(k)), as shapes.sh loads them; day DAY). Text protocol for
-- every shape (the service prepares its statements; that is the same for all shapes here).
--
-- SHAPE (what one transaction runs after BEGIN, before COMMIT; the service's shapes pick with one
-- part a campaign since e97e7d8, as the service does, unless they say otherwise):
--   service                  the service's round (src/claim/queries.rs): the counter rows and
--                            their campaigns locked (FOR UPDATE SKIP LOCKED) and each campaign's
--                            codes picked, in one UNION ALL (the keys padded to a power of two);
--                            then one UPDATE of the codes joined to their counter rows, CASE
--                            lists (padded) for the users, claim ids and new totals
--   service-padded-picks     the service's before e97e7d8: picks padded to a power of two too
--   service-unpadded         the service's with nothing padded (keys, CASE and IN lists)
--   service-no-counter-lock  the service's without the counter-and-campaign lock in the UNION
--   service-separate-lock    the lock as a statement of its own, then the picks alone (three
--                            columns a row instead of eleven), then the same UPDATE
--   service-plain-update     the service's lock and picks, then a plain UPDATE of the codes
--                            (the same CASE lists) and the counters by INSERT … ON DUPLICATE
--                            KEY UPDATE instead of the UPDATE joined to the counter rows
--   service-late-counter     the card's shape A: the picks alone, a plain UPDATE of the codes
--                            (the service's columns), then the counters bumped by one UPDATE
--                            joined to their campaigns that bumps a row only while the campaign
--                            is open and the new total within its limit
--   floor                    ../shared/design/floor/multi.lua's statements (UNION=1): the picks,
--                            a plain UPDATE of the codes, the counters by INSERT … ON DUPLICATE
--                            KEY UPDATE (the pick says `issue_day IS NULL`, as the service's
--                            does, so the service's index yields id order)
--   floor-counter-lock       the floor with the service's counter-and-campaign lock first
--   floor-service-columns    the floor, its UPDATE setting what the service's sets (the issue
--                            time, users and claim ids through CASE lists, unpadded)
--   floor-split-picks, floor-split-update, floor-split-counters
--                            the floor with that statement split in two (half the campaigns or
--                            codes each): what one more statement of the kind costs
--   floor-two-transactions   the floor's BATCH claims as two transactions of half the campaigns
--                            each: what one more transaction costs
local BATCH = tonumber(os.getenv("BATCH") or "26")
local C = tonumber(os.getenv("C") or "200")
local SHAPE = os.getenv("SHAPE") or "service"
local DAY = "'" .. (os.getenv("DAY") or "2026-12-06") .. "'"

local shapes = {
  service = true, ["service-no-counter-lock"] = true, ["service-separate-lock"] = true,
  ["service-plain-update"] = true, floor = true, ["floor-counter-lock"] = true,
  ["service-unpadded"] = true, ["service-padded-picks"] = true, ["floor-service-columns"] = true,
  ["service-late-counter"] = true, ["floor-split-picks"] = true, ["floor-split-update"] = true,
  ["floor-split-counters"] = true, ["floor-two-transactions"] = true,
}
local UNPADDED = SHAPE:find("unpadded", 1, true) ~= nil
if not shapes[SHAPE] then error("unknown SHAPE " .. SHAPE) end

function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
  seq = 0
  math.randomseed(os.time() + sysbench.tid * 7919 + math.floor(os.clock() * 1e6))
  -- Users are new in every run: a run-unique prefix.
  run = string.format("%x%x", os.time(), math.random(1, 1000000000))
  ids_of = {}
  local rs = con:query("SELECT seq, HEX(UNHEX(MD5(seq))) FROM seq_1_to_" .. C)
  for _ = 1, rs.nrows do
    local row = rs:fetch_row()
    ids_of[tonumber(row[1])] = "X'" .. row[2] .. "'"
  end
end

local function pow2(n)
  if UNPADDED then return n end
  local p = 1
  while p < n do p = p * 2 end
  return p
end

local function hex32()
  local t = {}
  for i = 1, 32 do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end

-- The counter rows of `camps` and their campaigns, locked: the service's first UNION member.
local function counter_lock(camps, slots)
  local keys = {}
  for i = 1, slots do
    keys[i] = "(" .. ids_of[camps[math.min(i, #camps)]] .. "," .. DAY .. ")"
  end
  return "(SELECT NULL AS part, d.campaign_id, d.day, d.issued, c.active, c.starts_at, c.ends_at, "
    .. "c.daily_limit, UTC_TIMESTAMP() AS now, NULL AS id, NULL AS code FROM campaign_day_counters d "
    .. "STRAIGHT_JOIN campaigns c ON c.id = d.campaign_id WHERE (d.campaign_id, d.day) IN ("
    .. table.concat(keys, ",") .. ") ORDER BY d.campaign_id, d.day FOR UPDATE SKIP LOCKED)"
end

-- A plain UPDATE of the codes `listed` with the service's columns: the issue time, and users
-- and claim ids through the CASE lists `users` and `claims` (" WHEN id THEN value" each).
local function update_codes_as_the_service(users, claims, listed)
  con:query("UPDATE codes SET status = 1, issued_at = UTC_TIMESTAMP(), issue_day = " .. DAY
    .. ", issued_to = CASE id" .. table.concat(users) .. " END, claim_id = CASE id"
    .. table.concat(claims) .. " END WHERE id IN (" .. table.concat(listed, ",") .. ")")
end

local function service(camps, want)
  local slots = pow2(#camps)
  local parts = {}
  local narrow = SHAPE == "service-separate-lock"
  if SHAPE == "service" or SHAPE == "service-plain-update" or SHAPE == "service-unpadded"
    or SHAPE == "service-padded-picks" then
    parts[1] = counter_lock(camps, slots)
  end
  if narrow then con:query(counter_lock(camps, slots)) end
  local nulls = narrow and "" or "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
  local pick_slots = SHAPE == "service-padded-picks" and slots or #camps
  for i = 1, pick_slots do
    local c = camps[math.min(i, #camps)]
    local n = (i <= #camps) and want[c] or 0
    parts[#parts + 1] = "(SELECT " .. i .. ", " .. nulls .. "id, code "
      .. "FROM codes FORCE INDEX (idx_codes_pick) WHERE campaign_id = " .. ids_of[c]
      .. " AND status = 0 AND issue_day IS NULL AND id > 0 AND id <= 9000000000000000000 "
      .. "ORDER BY id LIMIT " .. n .. " FOR UPDATE SKIP LOCKED)"
  end
  local rs = con:query(table.concat(parts, " UNION ALL "))
  local picked = {}
  local id_column = narrow and 2 or 10
  for _ = 1, rs.nrows do
    local row = rs:fetch_row()
    if row[1] ~= nil then picked[#picked + 1] = { row[id_column], camps[math.min(tonumber(row[1]), #camps)] } end
  end
  if #picked == 0 then return end
  seq = seq + 1
  local users, claims, listed, got, totals = {}, {}, {}, {}, {}
  for i = 1, pow2(#picked) do
    local p = picked[math.min(i, #picked)]
    users[i] = " WHEN " .. p[1] .. " THEN 'u" .. run .. "-" .. sysbench.tid .. "-" .. seq .. "-" .. i .. "'"
    claims[i] = " WHEN " .. p[1] .. " THEN X'" .. hex32() .. "'"
    listed[i] = p[1]
    if i <= #picked then got[p[2]] = (got[p[2]] or 0) + 1 end
  end
  for _, c in ipairs(camps) do
    if got[c] then totals[#totals + 1] = " WHEN " .. ids_of[c] .. " THEN issued + " .. got[c] end
  end
  if SHAPE == "service-late-counter" then
    update_codes_as_the_service(users, claims, listed)
    local keys, bumps = {}, {}
    for _, c in ipairs(camps) do
      if got[c] then
        keys[#keys + 1] = "(" .. ids_of[c] .. "," .. DAY .. ")"
        bumps[#bumps + 1] = " WHEN " .. ids_of[c] .. " THEN " .. got[c]
      end
    end
    local bump = "CASE d.campaign_id" .. table.concat(bumps) .. " END"
    con:query("UPDATE campaign_day_counters d STRAIGHT_JOIN campaigns c ON c.id = d.campaign_id "
      .. "SET d.issued = d.issued + " .. bump .. " WHERE (d.campaign_id, d.day) IN ("
      .. table.concat(keys, ",") .. ") AND c.active AND (c.starts_at IS NULL OR c.starts_at <= UTC_TIMESTAMP()) "
      .. "AND (c.ends_at IS NULL OR UTC_TIMESTAMP() < c.ends_at) "
      .. "AND (c.daily_limit IS NULL OR d.issued + " .. bump .. " <= c.daily_limit)")
    return
  end
  if SHAPE == "service-plain-update" then
    local vals = {}
    for _, c in ipairs(camps) do
      if got[c] then vals[#vals + 1] = "(" .. ids_of[c] .. "," .. DAY .. "," .. got[c] .. ")" end
    end
    update_codes_as_the_service(users, claims, listed)
    con:query("INSERT INTO campaign_day_counters (campaign_id, day, issued) VALUES "
      .. table.concat(vals, ",") .. " ON DUPLICATE KEY UPDATE issued = issued + VALUES(issued)")
    return
  end
  con:query("UPDATE codes c STRAIGHT_JOIN campaign_day_counters d FORCE INDEX (PRIMARY) "
    .. "ON d.campaign_id = c.campaign_id AND d.day = " .. DAY .. " SET c.status = 1, "
    .. "c.issued_at = UTC_TIMESTAMP(), c.issue_day = " .. DAY .. ", c.issued_to = CASE c.id"
    .. table.concat(users) .. " END, c.claim_id = CASE c.id" .. table.concat(claims)
    .. " END, d.issued = CASE d.campaign_id" .. table.concat(totals) .. " END WHERE c.id IN ("
    .. table.concat(listed, ",") .. ")")
end

local function halves(list)
  local a, b = {}, {}
  for i, x in ipairs(list) do if i <= #list / 2 then a[#a + 1] = x else b[#b + 1] = x end end
  return a, b
end

-- `list` as the groups one statement each: its two halves for SHAPE `split`, else itself.
local function statement_groups(list, split)
  if SHAPE == split and #list > 1 then
    local first, second = halves(list)
    return { first, second }
  end
  return { list }
end

local function floor(camps, want)
  if SHAPE == "floor-counter-lock" then con:query(counter_lock(camps, pow2(#camps))) end
  local parts, ids = {}, {}
  for _, c in ipairs(camps) do
    parts[#parts + 1] = "(SELECT id, campaign_id FROM codes FORCE INDEX (idx_codes_pick) WHERE campaign_id="
      .. ids_of[c] .. " AND status=0 AND issue_day IS NULL ORDER BY id LIMIT " .. want[c]
      .. " FOR UPDATE SKIP LOCKED)"
  end
  for _, group in ipairs(statement_groups(parts, "floor-split-picks")) do
    local rs = con:query(table.concat(group, " UNION ALL "))
    for _ = 1, rs.nrows do ids[#ids + 1] = rs:fetch_row()[1] end
  end
  if #ids == 0 then return end
  seq = seq + 1
  for _, group in ipairs(statement_groups(ids, "floor-split-update")) do
    if SHAPE == "floor-service-columns" then
      local users, claims = {}, {}
      for i, id in ipairs(group) do
        users[i] = " WHEN " .. id .. " THEN 'u" .. run .. "-" .. sysbench.tid .. "-" .. seq .. "-" .. i .. "'"
        claims[i] = " WHEN " .. id .. " THEN X'" .. hex32() .. "'"
      end
      update_codes_as_the_service(users, claims, group)
    else
      con:query("UPDATE codes SET status=1, issue_day=" .. DAY .. ", issued_to=CONCAT('u" .. run .. "-"
        .. sysbench.tid .. "-" .. seq .. "-', id) WHERE id IN (" .. table.concat(group, ",") .. ")")
    end
  end
  local vals = {}
  for _, c in ipairs(camps) do vals[#vals + 1] = "(" .. ids_of[c] .. "," .. DAY .. "," .. want[c] .. ")" end
  for _, group in ipairs(statement_groups(vals, "floor-split-counters")) do
    con:query("INSERT INTO campaign_day_counters (campaign_id, day, issued) VALUES "
      .. table.concat(group, ",") .. " ON DUPLICATE KEY UPDATE issued = issued + VALUES(issued)")
  end
end

function event()
  local want, camps = {}, {}
  for _ = 1, BATCH do
    local c = math.random(1, C)
    want[c] = (want[c] or 0) + 1
  end
  for c, _ in pairs(want) do camps[#camps + 1] = c end
  table.sort(camps, function(a, b) return ids_of[a] < ids_of[b] end)
  if SHAPE == "floor-two-transactions" and #camps > 1 then
    local first, second = halves(camps)
    for _, group in ipairs({ first, second }) do
      con:query("BEGIN")
      floor(group, want)
      con:query("COMMIT")
    end
    return
  end
  con:query("BEGIN")
  if SHAPE:sub(1, 5) == "floor" then floor(camps, want) else service(camps, want) end
  con:query("COMMIT")
end

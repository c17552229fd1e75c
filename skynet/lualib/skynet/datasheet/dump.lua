-- skynet.datasheet.dump: a Lua table <-> the datasheet document (a string that
-- skynet.datasheet.core reads in place; the format is described in
-- src/lua/modules/datasheet.rs and docs/spec/services.md).
--
--   dump.dump(t)              -> document
--   dump.undump(doc)          -> table, { [table] = slot }
--   dump.diff(last, current)  -> current, renumbered so that every table whose path
--                                also holds a table in `last` keeps its slot, and new
--                                tables take slots `last` never used
--
-- Values: integers, floats, strings, booleans, tables. Keys: the array part (1..n as
-- ipairs sees it) and strings without NUL bytes. Integers outside 32 bits, floats that
-- are not exact in 32 bits and strings holding NUL bytes use the extended types 6, 7
-- and 8, so they come back exactly.
local dump = {}

local pack, unpack = string.pack, string.unpack
local concat = table.concat
local INVALID = 0xffffffff

function dump.dump(root)
	local bodies = {}	-- slot + 1 -> encoded table
	local strings = {}	-- pieces of the string area
	local offset = 0	-- size of the string area so far
	local stroff = {}	-- plain string -> offset
	local bloboff = {}	-- tagged bytes -> offset
	local visiting = {}

	local function add_piece(bytes)
		local off = offset
		strings[#strings + 1] = bytes
		offset = offset + #bytes + 1	-- each piece ends with a NUL
		return off
	end

	local function str(s)
		local off = stroff[s]
		if not off then
			off = add_piece(s)
			stroff[s] = off
		end
		return off
	end

	local function blob(tag, bytes)
		local k = tag .. bytes
		local off = bloboff[k]
		if not off then
			off = add_piece(bytes)
			bloboff[k] = off
		end
		return off
	end

	local encode_table

	local function encode(v)
		local tv = type(v)
		if tv == "number" then
			if math.type(v) == "integer" then
				if v >= -0x80000000 and v <= 0x7fffffff then
					return 1, pack("<i4", v)
				end
				return 6, pack("<I4", blob("i", pack("<i8", v)))
			end
			if unpack("<f", pack("<f", v)) == v then
				return 2, pack("<f", v)
			end
			return 7, pack("<I4", blob("d", pack("<d", v)))
		elseif tv == "string" then
			if v:find("\0", 1, true) then
				return 8, pack("<I4", blob("s", pack("<s4", v)))
			end
			return 5, pack("<I4", str(v))
		elseif tv == "boolean" then
			return 3, pack("<I4", v and 1 or 0)
		elseif tv == "table" then
			return 4, pack("<I4", encode_table(v))
		end
		error("datasheet: can't store a " .. tv)
	end

	function encode_table(t)
		if visiting[t] then
			error "datasheet: a table contains itself"
		end
		visiting[t] = true
		local slot = #bodies
		bodies[slot + 1] = false
		local types, values, dict = {}, {}, {}
		local n = 0
		for i, v in ipairs(t) do
			n = i
			local ty, bytes = encode(v)
			types[i], values[i] = string.char(ty), bytes
		end
		local ndict = 0
		for k, v in pairs(t) do
			if type(k) == "string" then
				if k:find("\0", 1, true) then
					error("datasheet: a key can't hold NUL bytes")
				end
				local ty, bytes = encode(v)
				ndict = ndict + 1
				types[n + ndict] = string.char(ty)
				dict[ndict] = pack("<I4", str(k)) .. bytes
			elseif math.type(k) ~= "integer" or k < 1 or k > n then
				error(string.format("datasheet: key %s is neither a string nor in the array part", tostring(k)))
			end
		end
		local typebytes = concat(types)
		local pad = string.rep("\0", (4 - #typebytes % 4) % 4)
		bodies[slot + 1] = pack("<I4I4", n, ndict) .. typebytes .. pad .. concat(values) .. concat(dict)
		visiting[t] = nil
		return slot
	end

	encode_table(root)
	local n = #bodies
	local index = {}
	local at = 0
	for i = 1, n do
		index[i] = pack("<I4", at)
		at = at + #bodies[i]
	end
	strings[#strings + 1] = ""	-- the last piece's NUL
	return pack("<I4I4", 8 + 4 * n + at, n) .. concat(index) .. concat(bodies) .. concat(strings, "\0")
end

-- The header of a document: string area offset, slot count, slot offsets, tables base.
local function header(doc)
	local strings, n = unpack("<I4I4", doc)
	local slots = { unpack("<" .. string.rep("I4", n), doc, 9) }
	slots[n + 1] = nil	-- unpack's next position
	return strings, n, slots, 8 + 4 * n
end

-- Position (1-based) of slot `i`'s table, nil when the slot is empty.
local function table_pos(slots, base, i)
	local off = slots[i + 1]
	if off == nil or off == INVALID then
		return nil
	end
	return base + off + 1
end

function dump.undump(doc)
	local strings, n, slots, base = header(doc)
	local area = strings + 1
	local slot_of = {}
	local function cstr(off)
		return (unpack("z", doc, area + off))
	end
	local decode
	local function value(ty, pos)
		local x = unpack("<I4", doc, pos)
		if ty == 1 then
			return (unpack("<i4", doc, pos))
		elseif ty == 2 then
			return (unpack("<f", doc, pos))
		elseif ty == 3 then
			return x ~= 0
		elseif ty == 4 then
			return decode(x)
		elseif ty == 5 then
			return cstr(x)
		elseif ty == 6 then
			return (unpack("<i8", doc, area + x))
		elseif ty == 7 then
			return (unpack("<d", doc, area + x))
		elseif ty == 8 then
			return (unpack("<s4", doc, area + x))
		elseif ty == 0 then
			return nil
		end
		error(string.format("datasheet: bad type %d at %d", ty, pos))
	end
	function decode(i)
		local pos = assert(table_pos(slots, base, i), "datasheet: empty slot")
		local narray, ndict = unpack("<I4I4", doc, pos)
		local types = pos + 8
		local v = types + ((narray + ndict + 3) & ~3)
		local t = {}
		for k = 1, narray do
			t[k] = value(doc:byte(types + k - 1), v)
			v = v + 4
		end
		for k = 1, ndict do
			local key = cstr(unpack("<I4", doc, v))
			t[key] = value(doc:byte(types + narray + k - 1), v + 4)
			v = v + 8
		end
		slot_of[t] = i
		return t
	end
	return decode(0), slot_of
end

-- Rewrites the table at `pos` of `doc`, mapping table slots through `renumber`.
local function retable(doc, pos, renumber)
	local narray, ndict = unpack("<I4I4", doc, pos)
	local types = pos + 8
	local v = types + ((narray + ndict + 3) & ~3)
	local out = { doc:sub(pos, v - 1) }
	for k = 1, narray + ndict do
		local ty = doc:byte(types + k - 1)
		if k > narray then	-- the key
			out[#out + 1] = doc:sub(v, v + 3)
			v = v + 4
		end
		local x = unpack("<I4", doc, v)
		if ty == 4 then
			x = assert(renumber[x], "datasheet: unmapped table")
		end
		out[#out + 1] = pack("<I4", x)
		v = v + 4
	end
	return concat(out)
end

function dump.diff(last, current)
	local old_root, old_slot = dump.undump(last)
	local new_root, new_slot = dump.undump(current)
	local _, last_n = header(last)
	local strings, n, slots, base = header(current)
	-- tables at the same path keep their slot
	local renumber, taken = {}, {}
	local function match(o, c)
		local os, cs = old_slot[o], new_slot[c]
		if renumber[cs] == nil and not taken[os] then
			renumber[cs] = os
			taken[os] = true
		end
		for k, ov in pairs(o) do
			local cv = c[k]
			if type(ov) == "table" and type(cv) == "table" then
				match(ov, cv)
			end
		end
	end
	match(old_root, new_root)
	-- the others take fresh slots, after every slot `last` had
	local total = last_n
	for i = 0, n - 1 do
		if renumber[i] == nil and table_pos(slots, base, i) then
			renumber[i] = total
			total = total + 1
		end
	end
	local body_of = {}
	for i = 0, n - 1 do
		local pos = table_pos(slots, base, i)
		if pos then
			body_of[renumber[i]] = retable(current, pos, renumber)
		end
	end
	local index, bodies = {}, {}
	local at = 0
	for s = 0, total - 1 do
		local b = body_of[s]
		if b then
			index[s + 1] = pack("<I4", at)
			bodies[#bodies + 1] = b
			at = at + #b
		else
			index[s + 1] = pack("<I4", INVALID)
		end
	end
	return pack("<I4I4", 8 + 4 * total + at, total) .. concat(index) .. concat(bodies)
		.. current:sub(strings + 1)
end

return dump

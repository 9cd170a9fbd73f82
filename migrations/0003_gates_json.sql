-- Gate penalties as a JSON array of integers and nulls (`[0,2,null,50]`), which reads back
-- exactly what was written. The fixed-width `gates` column (3 characters per gate) misread
-- any value over 999 and dropped trailing blank gates. New writes fill `gates_json` and leave
-- `gates` empty; a row written before this migration has `gates_json` NULL and is still read
-- from `gates`, until its next change rewrites it.
ALTER TABLE results ADD COLUMN gates_json TEXT;

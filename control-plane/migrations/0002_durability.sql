-- A database's durability mode (`local` or `object-store`); NULL leaves
-- the choice to the host's default.
ALTER TABLE databases ADD COLUMN durability TEXT;

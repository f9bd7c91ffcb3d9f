-- 006: reserved for another branch's migration (this branch's own is 007); this placeholder
-- changes nothing and is replaced by that migration when the branches are merged.
SELECT 1;

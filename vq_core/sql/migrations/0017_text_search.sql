-- 0017: the job list's free-text search by words, through a word index in a side table.
--
-- The search was ILIKE '%text%' over the type, the question and the topic, which no
-- B-tree serves: a search matching little read the whole table (450 ms at 1M jobs).
-- pg_trgm would serve substrings, but it is an extension the embedded PostgreSQL vq
-- runs by default does not ship, so this is core full-text search instead: words and
-- word prefixes ('grav' finds 'gravity'), the 'simple' configuration (no stemming, no
-- stop words, only lower-casing).
--
-- The words live in vq.job_search, not in an index on vq.jobs: every claim and every
-- completion writes a new version of its job's row that HOT cannot place (the claim
-- and lease indexes change), and each new version would add entries to a GIN index on
-- vq.jobs. The type, question and topic never change after the insert, so the side
-- table is written once per job, by a statement trigger reading the statement's
-- transition table (every way in: the store's batch and single enqueue, vq.enqueue(),
-- the import), and emptied of a job's row when the job is deleted (the prune) or
-- truncated.

-- The searched document of a job. Capped so that a huge question cannot exceed the
-- tsvector size limit (1 MB) and fail its enqueue; positions are stripped (no phrase
-- search or ranking uses them, and they double the size).
CREATE FUNCTION vq.job_search_doc(job_type text, payload jsonb) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT strip(to_tsvector('simple', left(job_type, 1000) || ' '
                                       || left(coalesce(payload ->> 'question', ''), 60000) || ' '
                                       || left(coalesce(payload ->> 'topic', ''), 4000)))
$$;

-- What a search for the text ``words`` matches: every word of it, each as a prefix
-- (``grav ener`` -> 'grav':* & 'ener':*). The words are split by the same parser as the
-- documents, so punctuation never reaches tsquery's own syntax; each lexeme is quoted
-- with tsquery's escapes (a quote doubled, a backslash doubled). NULL when the text has
-- no words (nothing matches).
CREATE FUNCTION vq.job_search_query(words text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''':*',
                      ' & ')::tsquery
      FROM unnest(tsvector_to_array(to_tsvector('simple', left(words, 1000)))) AS lexeme
$$;

CREATE TABLE vq.job_search (
    job_id uuid NOT NULL,
    doc tsvector NOT NULL,
    CONSTRAINT job_search_pkey PRIMARY KEY (job_id)
);

-- No foreign key to vq.jobs: its check would lock each job's row (FOR KEY SHARE) on
-- every insert; the triggers below keep the two tables in step instead.
CREATE FUNCTION vq.job_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vq.job_search (job_id, doc)
        SELECT id, vq.job_search_doc(job_type, payload) FROM new_jobs;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM vq.job_search s USING old_jobs o WHERE s.job_id = o.id;
    ELSE  -- TRUNCATE fires no DELETE trigger
        TRUNCATE vq.job_search;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_search_insert AFTER INSERT ON vq.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

CREATE TRIGGER jobs_search_delete AFTER DELETE ON vq.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

CREATE TRIGGER jobs_search_truncate AFTER TRUNCATE ON vq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

-- The jobs that exist now (the triggers, created first, hold off concurrent writers of
-- vq.jobs until this transaction commits); the word index is built after the rows,
-- which is faster than filling it row by row.
INSERT INTO vq.job_search (job_id, doc) SELECT id, vq.job_search_doc(job_type, payload) FROM vq.jobs;

CREATE INDEX job_search_doc_idx ON vq.job_search USING gin (doc);

-- Which of these khids ($1) belong to a platform contact (linked or not).
SELECT s.khid
FROM erp_sync.contact_status s
WHERE s.khid = ANY ($1::text[])

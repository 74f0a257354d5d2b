SELECT reasons FROM erp_sync.rejections WHERE contact_id = $1

"""flask-restful Resources, one module per area; registered in web/routes.py."""

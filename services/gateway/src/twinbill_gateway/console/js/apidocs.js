// The API reference at /docs: Swagger UI (swagger-ui-dist, served by the gateway) over /openapi.json.
window.ui = window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });

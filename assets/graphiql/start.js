// GraphiQL against footfall's own endpoint. The bearer token goes in the Headers tab; a `key`
// in the page's fragment (`/api/graphql#key=…`, never sent to a server) fills it in.
(function () {
  var key = new URLSearchParams(location.hash.slice(1)).get('key') || 'YOUR_READ_KEY';
  var headers = JSON.stringify({ Authorization: 'Bearer ' + key }, null, 2);
  var example = [
    '# A report with typed metrics and dimensions (see the Docs tab).',
    'query Pages {',
    '  report(siteId: "shop.example", dateRange: "30d",',
    '         metrics: [VISITORS, PAGEVIEWS], dimensions: [EVENT_PAGE], limit: 10) {',
    '    results { dimensions metrics }',
    '  }',
    '}',
    '',
  ].join('\n');
  var fetcher = GraphiQL.createFetcher({ url: '/api/graphql' });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: example,
      defaultHeaders: headers,
      headers: headers,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    })
  );
})();
